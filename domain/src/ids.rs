//! Stream identifiers: how an aggregate instance is named in the event store.
//!
//! Every stream is `"{aggregate_type}-{id}"` (for example `invoice-0190...`), so the
//! type is readable in the store and two aggregates of different types never share a
//! stream even if their ids collide.

/// The stream id for one aggregate instance: `"{aggregate_type}-{id}"`.
pub fn stream_id(aggregate_type: &str, id: &str) -> String {
    format!("{aggregate_type}-{id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::Aggregate;

    #[test]
    fn a_stream_id_is_the_type_then_the_id() {
        assert_eq!(stream_id("invoice", "abc"), "invoice-abc");
        assert_eq!(stream_id(crate::Lead::TYPE, "L1"), "lead-L1");
    }
}
