//! HTTP clients of carbonflow (webhook delivery, `carbonflow submit|list|drop`).
//!
//! reqwest is built without a crypto provider, so that aws-lc (and cmake)
//! stay out of the build; [`builder`] installs ring as the process's default
//! provider, unless the embedding program chose one already, before reqwest
//! needs one (it asks even for plain `http://`).

/// A reqwest client builder, with the process's TLS provider in place.
pub fn builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}
