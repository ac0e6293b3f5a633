//! What every aggregate has in common with cqrs-es, written once: an event's type is its
//! variant's name, its schema version is the type's current one ([`crate::upcast`]), and
//! `handle` writes what `decide` returns. The rules live in each aggregate's `decide`; these
//! only connect it to the framework.

/// Implements `cqrs_es::DomainEvent` for an event enum: `event_type` is the variant's name (the
/// name stored with each event and matched on by the read models), `event_version` the type's
/// current schema version ([`crate::upcast::current_version`]), so writers always write the
/// shape the decoders expect. Also gives the enum `EVENT_TYPES`, every variant's name, which
/// the schema fixtures are checked against.
/// Every variant must be listed; a missing one is a compile error (a non-exhaustive match).
macro_rules! event_types {
    ($event:ident { $($variant:ident),+ $(,)? }) => {
        impl $event {
            /// Every event type of this enum: the names its variants are stored under.
            pub const EVENT_TYPES: &'static [&'static str] = &[$(stringify!($variant)),+];

            /// The name this event is stored under.
            fn event_type_name(&self) -> &'static str {
                match self {
                    $($event::$variant { .. } => stringify!($variant),)+
                }
            }
        }

        impl cqrs_es::DomainEvent for $event {
            fn event_type(&self) -> String {
                self.event_type_name().to_owned()
            }

            fn event_version(&self) -> String {
                crate::upcast::current_version(self.event_type_name()).to_string()
            }
        }
    };
}

/// `cqrs_es::Aggregate::handle` for an aggregate whose rules are in
/// `fn decide(&self, command) -> Result<Vec<Event>, Error>`: the decided events are written
/// to the sink in order, or the refusal is returned and nothing is written.
macro_rules! handle_by_deciding {
    () => {
        async fn handle(
            &mut self,
            command: Self::Command,
            _services: &Self::Services,
            sink: &cqrs_es::event_sink::EventSink<Self>,
        ) -> Result<(), Self::Error> {
            for event in self.decide(command)? {
                sink.write(event, self).await;
            }
            Ok(())
        }
    };
}

pub(crate) use {event_types, handle_by_deciding};
