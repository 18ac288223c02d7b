// Runs carbonflow query files on Apache Flink, unchanged, so that the tests
// can compare the two engines row for row (engine/tests/flink_reference.rs).
//
//   scripts/flink-sql.sh FILE.sql [FILE.sql ...]
//
// All files run in one JVM (a JVM start costs seconds on a small machine),
// each in a fresh streaming TableEnvironment with parallelism 1, in order:
// DDL and SET statements at once, every INSERT of a file together as one
// statement set (one Flink job), and a bare SELECT as a job of its own whose
// rows go to standard output the way carbonflow's print sink writes them
// (`+I[A, 2024-01-01 00:00:00.000, 10.0]`), after a line `-- FILE` naming
// the file they come from.
//
// A file that fails (Flink refuses the query, or its job fails) does not
// stop the others: the runner prints `flink: FILE failed: ROOT CAUSE` to
// standard error, goes on, and exits with status 1 at the end.
//
// Where Flink needs something carbonflow does not, this runner adapts, never
// the query:
// * A filesystem sink's 'path' is a file for carbonflow but a directory of
//   part files for Flink. The runner points each such sink at the directory
//   `PATH.flink-parts` (ALTER TABLE ... SET), and once the job has finished
//   writes the rows of all its part files, in file-name order, to PATH and
//   deletes the directory.
// * Flink's streaming filesystem sink only commits part files on a
//   checkpoint, so checkpointing is on; the final checkpoint at the end of
//   a bounded input commits the last ones.
// Statements are split at semicolons outside quotes and comments.

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.StringJoiner;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.StatementSet;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.table.catalog.ObjectIdentifier;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;

public final class RunSqlFiles {
    private static final Pattern INSERT_TARGET = Pattern.compile("^INSERT\\s+INTO\\s+([A-Za-z_][A-Za-z0-9_]*)", Pattern.CASE_INSENSITIVE);
    private static final Pattern SELECT = Pattern.compile("^(SELECT|WITH)\\b", Pattern.CASE_INSENSITIVE);
    private static final DateTimeFormatter TIMESTAMP = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss.SSS");
    private static final String PARTS_SUFFIX = ".flink-parts";

    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            System.err.println("usage: RunSqlFiles FILE.sql [FILE.sql ...]");
            System.exit(2);
        }
        boolean failed = false;
        for (String file : args) {
            System.err.println("flink: running " + file);
            System.out.println("-- " + file);
            try {
                run(Files.readString(Path.of(file)));
            } catch (Exception e) {
                failed = true;
                System.err.println("flink: " + file + " failed: " + rootCause(e));
            }
        }
        System.exit(failed ? 1 : 0);
    }

    private static Throwable rootCause(Throwable error) {
        Throwable cause = error;
        while (cause.getCause() != null && cause.getCause() != cause) {
            cause = cause.getCause();
        }
        return cause;
    }

    private static void run(String script) throws Exception {
        Configuration config = new Configuration();
        config.setString("parallelism.default", "1");
        config.setString("execution.checkpointing.interval", "200 ms");
        // A failing job fails the run instead of restarting forever.
        config.setString("restart-strategy.type", "none");
        TableEnvironment tables = TableEnvironment.create(EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(config).build());
        StatementSet inserts = tables.createStatementSet();
        // File sink path -> the directory Flink writes its part files to.
        Map<Path, Path> sinkFiles = new LinkedHashMap<>();
        boolean anyInsert = false;
        for (String statement : statements(script)) {
            Matcher insert = INSERT_TARGET.matcher(statement);
            if (insert.find()) {
                redirectFileSink(tables, insert.group(1), sinkFiles);
                inserts.addInsertSql(statement);
                anyInsert = true;
            } else if (SELECT.matcher(statement).find()) {
                printChanges(tables.executeSql(statement));
            } else {
                tables.executeSql(statement);
            }
        }
        if (anyInsert) {
            inserts.execute().await();
            sinkFiles.forEach(RunSqlFiles::collectParts);
        }
    }

    /** Points a filesystem sink at a directory of its own for Flink's part files. */
    private static void redirectFileSink(TableEnvironment tables, String table, Map<Path, Path> sinkFiles) throws Exception {
        ObjectIdentifier id = ObjectIdentifier.of(tables.getCurrentCatalog(), tables.getCurrentDatabase(), table);
        Map<String, String> options = tables
            .getCatalog(id.getCatalogName())
            .orElseThrow()
            .getTable(id.toObjectPath())
            .getOptions();
        if (!"filesystem".equals(options.get("connector"))) {
            return;
        }
        Path file = Path.of(options.get("path"));
        Path parts = Path.of(file + PARTS_SUFFIX);
        if (sinkFiles.putIfAbsent(file, parts) == null) {
            deleteTree(parts);
            tables.executeSql("ALTER TABLE `" + table + "` SET ('path' = '" + parts.toString().replace("'", "''") + "')");
        }
    }

    /** Writes the rows of a finished sink's part files to the sink's own path. */
    private static void collectParts(Path file, Path parts) {
        try (Stream<Path> entries = Files.exists(parts) ? Files.list(parts) : Stream.empty()) {
            List<Path> committed = entries.filter(p -> !p.getFileName().toString().startsWith(".")).sorted().toList();
            StringBuilder rows = new StringBuilder();
            for (Path part : committed) {
                rows.append(Files.readString(part));
            }
            Files.writeString(file, rows.toString());
            deleteTree(parts);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void printChanges(TableResult result) throws Exception {
        try (CloseableIterator<Row> rows = result.collect()) {
            while (rows.hasNext()) {
                Row row = rows.next();
                StringJoiner fields = new StringJoiner(", ", row.getKind().shortString() + "[", "]");
                for (int i = 0; i < row.getArity(); i++) {
                    fields.add(text(row.getField(i)));
                }
                System.out.println(fields);
            }
        }
    }

    /** A value as carbonflow's print sink writes it. */
    private static String text(Object value) {
        if (value == null) {
            return "NULL";
        }
        if (value instanceof LocalDateTime timestamp) {
            return TIMESTAMP.format(timestamp);
        }
        return value.toString();
    }

    /** The statements of a script: split at semicolons outside quotes and comments, blanks dropped. */
    private static List<String> statements(String script) {
        List<String> statements = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        int i = 0;
        while (i < script.length()) {
            char c = script.charAt(i);
            if (c == '-' && script.startsWith("--", i)) {
                int end = script.indexOf('\n', i);
                i = end < 0 ? script.length() : end;
            } else if (c == '/' && script.startsWith("/*", i)) {
                int end = script.indexOf("*/", i + 2);
                i = end < 0 ? script.length() : end + 2;
            } else if (c == '\'' || c == '"' || c == '`') {
                int end = i + 1;
                while (end < script.length() && script.charAt(end) != c) {
                    end++;
                }
                current.append(script, i, Math.min(end + 1, script.length()));
                i = end + 1;
            } else if (c == ';') {
                addStatement(statements, current);
                i++;
            } else {
                current.append(c);
                i++;
            }
        }
        addStatement(statements, current);
        return statements;
    }

    private static void addStatement(List<String> statements, StringBuilder current) {
        String statement = current.toString().strip();
        if (!statement.isEmpty()) {
            statements.add(statement);
        }
        current.setLength(0);
    }

    private static void deleteTree(Path root) {
        if (!Files.exists(root)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(root)) {
            for (Path path : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(path);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private RunSqlFiles() {}
}
