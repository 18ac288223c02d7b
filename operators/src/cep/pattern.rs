//! The `PATTERN` clause: its syntax tree, a parser for its text form and the
//! compilation into the program the matcher runs.
//!
//! The tree is independent of any SQL parser so that the binder can build it
//! from sqlparser's `MATCH_RECOGNIZE` AST and tests can write `A B+? (C | D)*`.
//! Variables are [`VarId`]s, indices into the variable names of the
//! [`MatchSpec`](super::MatchSpec); [`Pattern::parse`] assigns them in order of
//! first appearance.
//!
//! ## Compilation
//!
//! A pattern becomes a list of instructions in the style of Thompson / Pike
//! regex programs: `Var` consumes one row whose `DEFINE` condition holds,
//! `Split(x, y)` forks with `x` preferred, `Jump`, and `Accept`. Bounded
//! quantifiers are unrolled (`X{2,4}` is `X X (X (X)?)?`), so a thread's program
//! counter says how many iterations it has made and threads need no counters.
//!
//! Iterations beyond the minimum must consume at least one row, as in
//! ECMAScript regexes: otherwise `(A?)*` would loop forever, and the preference
//! between "one more (empty) iteration" and "stop" would be meaningless. Only a
//! quantifier whose body can match the empty sequence needs the check; for it
//! the body is bracketed by `Mark(slot)` (remember the position) and
//! `Check(slot)` (fail if the position did not move). Iterations up to the
//! minimum may be empty, which is what makes `(A?){2}` match zero rows.

use std::fmt;

use super::CepError;

/// A pattern variable: an index into the variable names of a match spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VarId(pub u16);

impl VarId {
    /// The index into the variable names.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// A row pattern, as written in `PATTERN (...)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// One row mapped to this variable.
    Var(VarId),
    /// The parts one after the other. An empty list matches zero rows.
    Concat(Vec<Pattern>),
    /// The first alternative that leads to a match, tried left to right.
    Alt(Vec<Pattern>),
    /// Parentheses. Kept so that [`fmt::Display`] prints the pattern as written.
    Group(Box<Pattern>),
    /// `inner` repeated between `min` and `max` (unbounded when `None`) times.
    /// Greedy quantifiers prefer more iterations, reluctant ones (`?` suffix) fewer.
    Repeat {
        /// The repeated pattern.
        inner: Box<Pattern>,
        /// The minimum number of iterations.
        min: u32,
        /// The maximum number of iterations, `None` for no limit.
        max: Option<u32>,
        /// Whether more iterations are preferred to fewer.
        greedy: bool,
    },
}

/// Programs longer than this are refused: `A{100000}` unrolls into that many
/// instructions, and every one of them costs memory per thread list.
pub const MAX_PROGRAM_LEN: usize = 100_000;

impl Pattern {
    /// Parses the text between the parentheses of `PATTERN ( ... )`.
    ///
    /// Variables are identifiers (`[A-Za-z_][A-Za-z0-9_]*`, case-sensitive);
    /// a name already in `variables` gets its index, a new one is appended.
    /// Supported: concatenation by juxtaposition, `|`, parentheses, and the
    /// quantifiers `*`, `+`, `?`, `{n}`, `{n,}`, `{,m}`, `{n,m}`, each
    /// optionally followed by `?` to make it reluctant.
    pub fn parse(text: &str, variables: &mut Vec<String>) -> Result<Pattern, CepError> {
        let mut parser = Parser {
            text: text.as_bytes(),
            pos: 0,
            variables,
        };
        let pattern = parser.alternation()?;
        parser.skip_spaces();
        if parser.pos < parser.text.len() {
            return Err(parser.error("unexpected character"));
        }
        Ok(pattern)
    }

    /// Whether the pattern can match zero rows.
    pub fn is_nullable(&self) -> bool {
        match self {
            Pattern::Var(_) => false,
            Pattern::Concat(parts) => parts.iter().all(Pattern::is_nullable),
            Pattern::Alt(parts) => parts.iter().any(Pattern::is_nullable),
            Pattern::Group(inner) => inner.is_nullable(),
            Pattern::Repeat { inner, min, .. } => *min == 0 || inner.is_nullable(),
        }
    }

    /// The most rows a match can span, `None` when unbounded.
    pub fn max_len(&self) -> Option<u64> {
        match self {
            Pattern::Var(_) => Some(1),
            Pattern::Concat(parts) => parts.iter().try_fold(0u64, |sum, part| Some(sum.saturating_add(part.max_len()?))),
            Pattern::Alt(parts) => parts.iter().try_fold(0u64, |most, part| Some(most.max(part.max_len()?))),
            Pattern::Group(inner) => inner.max_len(),
            Pattern::Repeat { inner, max, .. } => match (inner.max_len()?, max) {
                (0, _) => Some(0),
                (len, Some(max)) => Some(len.saturating_mul(u64::from(*max))),
                (_, None) => None,
            },
        }
    }

    /// Calls `f` on every variable occurrence, left to right.
    pub fn for_each_var(&self, f: &mut impl FnMut(VarId)) {
        match self {
            Pattern::Var(var) => f(*var),
            Pattern::Concat(parts) | Pattern::Alt(parts) => parts.iter().for_each(|part| part.for_each_var(f)),
            Pattern::Group(inner) | Pattern::Repeat { inner, .. } => inner.for_each_var(f),
        }
    }

    /// A [`fmt::Display`] of the pattern with variable names instead of indices.
    pub fn display<'a>(&'a self, names: &'a [impl AsRef<str>]) -> impl fmt::Display + 'a {
        PatternDisplay { pattern: self, names }
    }
}

struct PatternDisplay<'a, S> {
    pattern: &'a Pattern,
    names: &'a [S],
}

impl<S: AsRef<str>> fmt::Display for PatternDisplay<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |pattern: &Pattern, f: &mut fmt::Formatter<'_>| write!(f, "{}", pattern.display(self.names));
        match self.pattern {
            Pattern::Var(var) => match self.names.get(var.index()) {
                Some(name) => f.write_str(name.as_ref()),
                None => write!(f, "#{}", var.0),
            },
            Pattern::Concat(parts) if parts.is_empty() => f.write_str("()"),
            Pattern::Concat(parts) => {
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    // An alternation inside a concatenation needs its parentheses back.
                    if matches!(part, Pattern::Alt(_)) {
                        write!(f, "({})", part.display(self.names))?;
                    } else {
                        show(part, f)?;
                    }
                }
                Ok(())
            }
            Pattern::Alt(parts) => {
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" | ")?;
                    }
                    show(part, f)?;
                }
                Ok(())
            }
            Pattern::Group(inner) if matches!(&**inner, Pattern::Concat(parts) if parts.is_empty()) => f.write_str("()"),
            Pattern::Group(inner) => write!(f, "({})", inner.display(self.names)),
            Pattern::Repeat { inner, min, max, greedy } => {
                if matches!(**inner, Pattern::Var(_) | Pattern::Group(_)) {
                    show(inner, f)?;
                } else {
                    write!(f, "({})", inner.display(self.names))?;
                }
                match (min, max) {
                    (0, None) => f.write_str("*")?,
                    (1, None) => f.write_str("+")?,
                    (0, Some(1)) => f.write_str("?")?,
                    (min, None) => write!(f, "{{{min},}}")?,
                    (min, Some(max)) if min == max => write!(f, "{{{min}}}")?,
                    (min, Some(max)) => write!(f, "{{{min},{max}}}")?,
                }
                if *greedy { Ok(()) } else { f.write_str("?") }
            }
        }
    }
}

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    variables: &'a mut Vec<String>,
}

impl Parser<'_> {
    fn error(&self, message: &str) -> CepError {
        CepError::PatternSyntax {
            position: self.pos,
            message: message.to_owned(),
        }
    }

    fn skip_spaces(&mut self) {
        while self.text.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_spaces();
        self.text.get(self.pos).copied()
    }

    fn alternation(&mut self) -> Result<Pattern, CepError> {
        let mut alternatives = vec![self.concatenation()?];
        while self.peek() == Some(b'|') {
            self.pos += 1;
            alternatives.push(self.concatenation()?);
        }
        Ok(if alternatives.len() == 1 {
            alternatives.remove(0)
        } else {
            Pattern::Alt(alternatives)
        })
    }

    fn concatenation(&mut self) -> Result<Pattern, CepError> {
        let mut parts = Vec::new();
        while let Some(c) = self.peek() {
            if c == b'|' || c == b')' {
                break;
            }
            parts.push(self.quantified()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Pattern::Concat(parts) })
    }

    fn quantified(&mut self) -> Result<Pattern, CepError> {
        let mut pattern = self.primary()?;
        while let Some((min, max)) = self.quantifier()? {
            let greedy = if self.text.get(self.pos) == Some(&b'?') {
                self.pos += 1;
                false
            } else {
                true
            };
            pattern = Pattern::Repeat {
                inner: Box::new(pattern),
                min,
                max,
                greedy,
            };
        }
        Ok(pattern)
    }

    fn primary(&mut self) -> Result<Pattern, CepError> {
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                let inner = if self.peek() == Some(b')') {
                    Pattern::Concat(Vec::new())
                } else {
                    self.alternation()?
                };
                if self.peek() != Some(b')') {
                    return Err(self.error("expected ')'"));
                }
                self.pos += 1;
                Ok(Pattern::Group(Box::new(inner)))
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let begin = self.pos;
                while self.text.get(self.pos).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
                    self.pos += 1;
                }
                // Only ASCII was consumed, so the slice is valid UTF-8.
                let name = String::from_utf8_lossy(&self.text[begin..self.pos]).into_owned();
                let index = match self.variables.iter().position(|known| *known == name) {
                    Some(index) => index,
                    None => {
                        self.variables.push(name);
                        self.variables.len() - 1
                    }
                };
                let id = u16::try_from(index).map_err(|_| self.error("too many pattern variables"))?;
                Ok(Pattern::Var(VarId(id)))
            }
            _ => Err(self.error("expected a pattern variable or '('")),
        }
    }

    /// Reads a quantifier without its reluctance suffix.
    fn quantifier(&mut self) -> Result<Option<(u32, Option<u32>)>, CepError> {
        let bounds = match self.peek() {
            Some(b'*') => (0, None),
            Some(b'+') => (1, None),
            Some(b'?') => (0, Some(1)),
            Some(b'{') => {
                self.pos += 1;
                let min = self.number()?;
                let bounds = if self.peek() == Some(b',') {
                    self.pos += 1;
                    (min.unwrap_or(0), self.number()?)
                } else {
                    let exact = min.ok_or_else(|| self.error("expected a number"))?;
                    (exact, Some(exact))
                };
                if self.peek() != Some(b'}') {
                    return Err(self.error("expected '}'"));
                }
                if bounds.1.is_some_and(|max| max < bounds.0) {
                    return Err(self.error("the maximum of a quantifier is below its minimum"));
                }
                bounds
            }
            _ => return Ok(None),
        };
        self.pos += 1;
        Ok(Some(bounds))
    }

    fn number(&mut self) -> Result<Option<u32>, CepError> {
        self.skip_spaces();
        let begin = self.pos;
        while self.text.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        if begin == self.pos {
            return Ok(None);
        }
        let digits = String::from_utf8_lossy(&self.text[begin..self.pos]);
        digits.parse().map(Some).map_err(|_| self.error("quantifier bound too large"))
    }
}

/// One instruction of a compiled pattern. See the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inst {
    /// Consume the current row if the variable's condition holds for it.
    Var(VarId),
    /// Continue at both targets, the first preferred.
    Split(u32, u32),
    /// Continue at the target.
    Jump(u32),
    /// Remember the current position in the slot (an iteration begins).
    Mark(u16),
    /// Fail if the position equals the slot's (the iteration consumed no row).
    Check(u16),
    /// The pattern is complete.
    Accept,
}

/// A compiled pattern.
#[derive(Clone, Debug)]
pub(crate) struct Program {
    pub(crate) insts: Vec<Inst>,
    /// The number of `Mark` / `Check` slots each thread carries.
    pub(crate) slots: usize,
    /// Per instruction, the `Var` and `Accept` instructions it reaches
    /// without consuming a row, in preference order (depth first, preferred
    /// branch first, each once). `None` when the pattern has slots (what a
    /// thread reaches then depends on its slots) or the table would exceed
    /// [`MAX_CLOSURE_ENTRIES`].
    pub(crate) closures: Option<Vec<Box<[u32]>>>,
}

/// The most entries the closure table of a program may hold: long chains of
/// optional iterations (`A{0,5000}`) would make it quadratic.
const MAX_CLOSURE_ENTRIES: usize = 1 << 20;

impl Program {
    /// Compiles `pattern`; fails when the program would exceed [`MAX_PROGRAM_LEN`].
    pub(crate) fn compile(pattern: &Pattern) -> Result<Program, CepError> {
        let mut compiler = Compiler::default();
        compiler.emit_pattern(pattern)?;
        compiler.push(Inst::Accept)?;
        let slots = usize::from(compiler.slots);
        let closures = if slots == 0 { closures(&compiler.insts) } else { None };
        Ok(Program {
            insts: compiler.insts,
            slots,
            closures,
        })
    }
}

/// The closure table of [`Program::closures`], if it stays small enough.
fn closures(insts: &[Inst]) -> Option<Vec<Box<[u32]>>> {
    let mut table = Vec::with_capacity(insts.len());
    let (mut entries, mut stack, mut visited) = (0, Vec::new(), vec![usize::MAX; insts.len()]);
    for from in 0..insts.len() {
        let mut leaves = Vec::new();
        stack.push(from as u32);
        while let Some(pc) = stack.pop() {
            let pc = pc as usize;
            if visited[pc] == from {
                continue;
            }
            visited[pc] = from;
            match insts[pc] {
                Inst::Var(_) | Inst::Accept => leaves.push(pc as u32),
                Inst::Jump(target) => stack.push(target),
                Inst::Split(preferred, other) => {
                    stack.push(other);
                    stack.push(preferred);
                }
                Inst::Mark(_) | Inst::Check(_) => unreachable!("programs with slots have no closure table"),
            }
        }
        entries += leaves.len();
        if entries > MAX_CLOSURE_ENTRIES {
            return None;
        }
        table.push(leaves.into_boxed_slice());
    }
    Some(table)
}

#[derive(Default)]
struct Compiler {
    insts: Vec<Inst>,
    slots: u16,
}

/// A placeholder target, patched once the real one is known.
const HOLE: u32 = u32::MAX;

impl Compiler {
    fn push(&mut self, inst: Inst) -> Result<u32, CepError> {
        if self.insts.len() >= MAX_PROGRAM_LEN {
            return Err(CepError::PatternTooLarge { limit: MAX_PROGRAM_LEN });
        }
        self.insts.push(inst);
        // MAX_PROGRAM_LEN fits in u32, so the cast cannot truncate.
        Ok((self.insts.len() - 1) as u32)
    }

    fn here(&self) -> u32 {
        self.insts.len() as u32
    }

    fn patch(&mut self, at: u32, target: u32) {
        match &mut self.insts[at as usize] {
            Inst::Jump(t) => *t = target,
            Inst::Split(a, b) => {
                if *a == HOLE {
                    *a = target;
                } else {
                    *b = target;
                }
            }
            _ => unreachable!("only jumps and splits have targets"),
        }
    }

    fn emit_pattern(&mut self, pattern: &Pattern) -> Result<(), CepError> {
        match pattern {
            Pattern::Var(var) => {
                self.push(Inst::Var(*var))?;
            }
            Pattern::Concat(parts) => {
                for part in parts {
                    self.emit_pattern(part)?;
                }
            }
            Pattern::Group(inner) => self.emit_pattern(inner)?,
            Pattern::Alt(parts) => {
                let mut exits = Vec::new();
                for (i, part) in parts.iter().enumerate() {
                    if i + 1 < parts.len() {
                        let split = self.push(Inst::Split(self.here() + 1, HOLE))?;
                        self.emit_pattern(part)?;
                        exits.push(self.push(Inst::Jump(HOLE))?);
                        let next = self.here();
                        self.patch(split, next);
                    } else {
                        self.emit_pattern(part)?;
                    }
                }
                let end = self.here();
                for exit in exits {
                    self.patch(exit, end);
                }
            }
            Pattern::Repeat { inner, min, max, greedy } => {
                for _ in 0..*min {
                    self.emit_pattern(inner)?;
                }
                let slot = if inner.is_nullable() {
                    let slot = self.slots;
                    self.slots = self.slots.checked_add(1).ok_or(CepError::PatternTooLarge { limit: MAX_PROGRAM_LEN })?;
                    Some(slot)
                } else {
                    None
                };
                match max {
                    None => {
                        let split = self.push(Inst::Split(HOLE, HOLE))?;
                        self.emit_iteration(inner, slot)?;
                        self.push(Inst::Jump(split))?;
                        let body = split + 1;
                        let exit = self.here();
                        self.set_split(split, body, exit, *greedy);
                    }
                    Some(max) => {
                        // `(X (X (X)?)?)?`: every optional iteration exits to the end.
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            splits.push(self.push(Inst::Split(HOLE, HOLE))?);
                            self.emit_iteration(inner, slot)?;
                        }
                        let exit = self.here();
                        for split in splits {
                            self.set_split(split, split + 1, exit, *greedy);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn emit_iteration(&mut self, inner: &Pattern, slot: Option<u16>) -> Result<(), CepError> {
        if let Some(slot) = slot {
            self.push(Inst::Mark(slot))?;
        }
        self.emit_pattern(inner)?;
        if let Some(slot) = slot {
            self.push(Inst::Check(slot))?;
        }
        Ok(())
    }

    fn set_split(&mut self, at: u32, body: u32, exit: u32, greedy: bool) {
        self.insts[at as usize] = if greedy { Inst::Split(body, exit) } else { Inst::Split(exit, body) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Pattern, Vec<String>) {
        let mut names = Vec::new();
        let pattern = Pattern::parse(text, &mut names).expect("valid pattern");
        (pattern, names)
    }

    #[test]
    fn parses_quantifiers_and_reluctance() {
        let (pattern, names) = parse("A B+? C{2,} D{,3}? E{4}");
        assert_eq!(names, ["A", "B", "C", "D", "E"]);
        let Pattern::Concat(parts) = &pattern else { panic!("concat expected") };
        let bounds: Vec<_> = parts
            .iter()
            .filter_map(|part| match part {
                Pattern::Repeat { min, max, greedy, .. } => Some((*min, *max, *greedy)),
                _ => None,
            })
            .collect();
        assert_eq!(bounds, [(1, None, false), (2, None, true), (0, Some(3), false), (4, Some(4), true)]);
    }

    #[test]
    fn display_round_trips() {
        for text in ["A B+? (C | D)* E", "(A B)+ C?", "A{2,5}? B{3} C{1,}", "A | B C", "()", "(A | B)* C"] {
            let (pattern, names) = parse(text);
            let shown = pattern.display(&names).to_string();
            let (again, _) = parse(&shown);
            assert_eq!(again, pattern, "{text} printed as {shown}");
        }
        let (pattern, names) = parse("A  B+?  ( C|D )*");
        assert_eq!(pattern.display(&names).to_string(), "A B+? (C | D)*");
    }

    #[test]
    fn rejects_bad_syntax() {
        for text in ["A (B", "A B)", "A{3,2}", "A{}", "+A", "A | 1"] {
            let mut names = Vec::new();
            assert!(Pattern::parse(text, &mut names).is_err(), "{text} should fail");
        }
    }

    #[test]
    fn nullable_and_max_len() {
        let cases = [
            ("A B", false, Some(2)),
            ("A?", true, Some(1)),
            ("(A | B C){2,3}", false, Some(6)),
            ("A B*", false, None),
            ("(A?){2}", true, Some(2)),
            ("A{0}", true, Some(0)),
        ];
        for (text, nullable, max_len) in cases {
            let (pattern, _) = parse(text);
            assert_eq!(pattern.is_nullable(), nullable, "{text}");
            assert_eq!(pattern.max_len(), max_len, "{text}");
        }
    }

    #[test]
    fn greedy_and_reluctant_loops_order_their_splits() {
        let (greedy, _) = parse("A*");
        let (reluctant, _) = parse("A*?");
        let a = VarId(0);
        assert_eq!(
            Program::compile(&greedy).unwrap().insts,
            [Inst::Split(1, 3), Inst::Var(a), Inst::Jump(0), Inst::Accept]
        );
        assert_eq!(
            Program::compile(&reluctant).unwrap().insts,
            [Inst::Split(3, 1), Inst::Var(a), Inst::Jump(0), Inst::Accept]
        );
        // What each instruction reaches without a row, preferred first; the jump loops back.
        let closures = |program: Program| program.closures.expect("no slots").iter().map(|leaves| leaves.to_vec()).collect::<Vec<_>>();
        assert_eq!(closures(Program::compile(&greedy).unwrap()), [vec![1, 3], vec![1], vec![1, 3], vec![3]]);
        assert_eq!(closures(Program::compile(&reluctant).unwrap()), [vec![3, 1], vec![1], vec![3, 1], vec![3]]);
    }

    #[test]
    fn only_nullable_bodies_get_progress_checks() {
        let (pattern, _) = parse("(A?)* B+");
        let program = Program::compile(&pattern).unwrap();
        assert_eq!(program.slots, 1);
        assert!(program.closures.is_none(), "what a thread reaches depends on its slots");
        assert_eq!(program.insts.iter().filter(|i| matches!(i, Inst::Check(_))).count(), 1);
    }

    #[test]
    fn huge_repetition_is_refused() {
        let (pattern, _) = parse("A{200000}");
        assert!(matches!(Program::compile(&pattern), Err(CepError::PatternTooLarge { .. })));
    }
}
