//! Counts what the store asks of MongoDB, from the driver's command monitoring: every
//! command is a round trip, and the replies of writes say how many documents they
//! wrote. The bench divides both by the events stored to report documents per event
//! and round trips per group commit (docs/benchmark.md); operators see them in
//! `/metrics`.

use mongodb::bson::{Bson, Document};
use mongodb::event::command::CommandEvent;
use mongodb::event::EventHandler;

/// The handler to set as the client's `command_event_handler`.
pub fn handler() -> EventHandler<CommandEvent> {
    EventHandler::callback(|event: CommandEvent| match event {
        CommandEvent::Started(e) => {
            metrics::counter!("mongodb_commands_total", "command" => e.command_name).increment(1);
        }
        CommandEvent::Succeeded(e) => {
            let written = documents_written(&e.command_name, &e.reply);
            if written > 0 {
                metrics::counter!("mongodb_documents_written_total", "command" => e.command_name)
                    .increment(written);
            }
        }
        _ => {}
    })
}

/// Documents a successful write command's reply says it inserted, changed, upserted
/// or deleted (an update that matched but changed nothing wrote nothing).
fn documents_written(command: &str, reply: &Document) -> u64 {
    let count = |field: &str| match reply.get(field) {
        Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    };
    match command {
        "insert" | "delete" => count("n"),
        "update" => {
            let upserted = match reply.get("upserted") {
                Some(Bson::Array(a)) => a.len() as u64,
                _ => 0,
            };
            count("nModified") + upserted
        }
        "findAndModify" => u64::from(reply.get("value").is_some_and(|v| v != &Bson::Null)),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::documents_written;
    use mongodb::bson::doc;

    #[test]
    fn write_replies_count_what_they_wrote() {
        assert_eq!(documents_written("insert", &doc! { "n": 3, "ok": 1.0 }), 3);
        assert_eq!(
            documents_written(
                "update",
                &doc! { "n": 4_i64, "nModified": 2, "upserted": [{ "index": 3, "_id": "x" }], "ok": 1.0 }
            ),
            3
        );
        assert_eq!(
            documents_written("update", &doc! { "n": 1, "nModified": 0 }),
            0
        );
        assert_eq!(documents_written("find", &doc! { "n": 9 }), 0);
        assert_eq!(documents_written("delete", &doc! { "n": 2 }), 2);
    }
}
