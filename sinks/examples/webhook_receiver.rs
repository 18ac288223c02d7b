//! A partner's end of carbonflow's webhooks: an HTTP server that verifies
//! each request's Standard Webhooks signature and prints the alert.
//!
//! ```text
//! WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw \
//!   cargo run -p carbonflow-sinks --features receiver --example webhook_receiver -- 8787
//! ```
//!
//! then, in another terminal, `examples/webhook_receiver/partner_alerts.sql`
//! (see `examples/README.md`). The server is
//! `carbonflow_sinks::webhook::receiver::Receiver`; its check is the one a
//! partner writes in any language:
//!
//! ```text
//! verify(&secrets, WebhookHeaders { id, timestamp, signature }, &body, now, DEFAULT_TOLERANCE)
//! ```
//!
//! A request that does not verify is answered 401 and printed as refused.
//! A real partner would also keep the `webhook-id`s it has processed and
//! skip a repeat: delivery is at least once.

use std::collections::HashSet;
use std::net::SocketAddr;

use carbonflow_sinks::webhook::receiver::Receiver;
use carbonflow_sinks::webhook::signature::SigningSecret;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args().nth(1).map(|port| port.parse()).transpose()?.unwrap_or(8787);
    let secret = std::env::var("WEBHOOK_SECRET").map_err(|_| "set WEBHOOK_SECRET to the table's 'secret' (whsec_...)")?;
    let secrets = SigningSecret::parse_list(&secret)?;
    let receiver = Receiver::start_on(SocketAddr::from(([127, 0, 0, 1], port)), secrets)?;
    let requests = receiver.subscribe();
    eprintln!("listening on {}", receiver.url());
    let mut seen = HashSet::new();
    for request in requests {
        let body = String::from_utf8_lossy(&request.body);
        match (&request.verified, seen.insert(request.id.clone())) {
            (Err(error), _) => println!("refused {}: {error}", request.id),
            (Ok(()), false) => println!("repeat  {} (already processed, skipped)", request.id),
            (Ok(()), true) => println!("alert   {} {body}", request.id),
        }
    }
    Ok(())
}
