//! Transports other than HTTP that feed the pipeline. [`nats`]: events outside producers
//! publish to JetStream, one subject per site, run by the loaders through the same stages as
//! an HTTP batch.
//!
//! # The path of a published event
//! 1. A producer publishes a batch (the public JSON batch form, the simple array form, or CBOR
//!    with `Content-Type: application/cbor`) to `<input_subject>.<site>`; JetStream stores it
//!    in the input stream and acknowledges the producer.
//! 2. A loader ([`nats::run`], inside `pathlight load`) fetches it from the shared durable
//!    consumer and describes it as an [`crate::pipeline::IngestRequest`] for the subject's
//!    site: the batch's own `site_id` must agree, as a `?site=` must over HTTP.
//! 3. [`crate::pipeline::Pipeline::ingest`] decodes, validates, enriches and stores it exactly
//!    as an HTTP batch's (in scale-out mode: publishes its rows to the rows stream, which the
//!    loaders insert). A message delivered again (its loader died before acking) is checked
//!    against the batches and event ids already stored, as a tracker's resent batch is, so it
//!    is stored once.
//! 4. Stored: the message is acked. Refused as a whole, or some of its events refused: the
//!    message goes to `<input_subject>.dead.<site>` with the reasons in its
//!    `Pathlight-Refused` header, and is acked, so one bad message never blocks the stream.
//!    Storage busy or away: the message is left for redelivery after a backoff.

pub mod nats;
