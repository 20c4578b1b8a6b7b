//! `stile trigger <event_type>`: like `stripe trigger`, creates a test verification
//! session on a running server and drives it until the named event is emitted.

use std::time::Duration;

use serde_json::{Value, json};

/// The moves (test helper actions, or `cancel`) that lead from a new session to each
/// event type, after the `created` event every session emits.
fn path_to(event_type: &str) -> Option<&'static [&'static str]> {
    Some(match event_type {
        "verification_session.created" => &[],
        "verification_session.processing" => &["process"],
        "verification_session.requires_input" => &["process", "require_input"],
        "verification_session.verified" => &["process", "verify"],
        "verification_session.failed" => &["process", "fail"],
        "verification_session.cancelled" => &["cancel"],
        "verification_session.expired" => &["expire"],
        _ => return None,
    })
}

/// The width of the event type column of what `trigger` prints: the longest type it
/// emits, so the event ids line up.
const EVENT_TYPE_WIDTH: usize = "verification_session.requires_input".len();

/// A client of a running stile.
struct Client {
    agent: ureq::Agent,
    base: String,
    key: String,
}

impl Client {
    fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.key))
            .header("content-type", "application/json")
            .send(serde_json::to_vec(body)?.as_slice());
        self.read(path, response)
    }

    fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.key))
            .call();
        self.read(path, response)
    }

    fn read(
        &self,
        path: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Value> {
        let mut response = response
            .map_err(|e| anyhow::anyhow!("cannot reach stile at {}{path}: {e}; is the server running?", self.base))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string()?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status >= 400 {
            let message = body["error"]["message"].as_str().unwrap_or(&text);
            anyhow::bail!("{path} answered {status}: {message}");
        }
        Ok(body)
    }

    /// The id of the newest event of a session.
    fn latest_event(&self, session: &str) -> anyhow::Result<String> {
        let list = self.get(&format!("/v1/events?session_id={session}&limit=1"))?;
        Ok(list["data"][0]["id"].as_str().unwrap_or("?").to_string())
    }
}

/// Runs the trigger, printing each step and the event id to stdout.
pub fn run(event_type: &str, base: &str, key: &str) -> anyhow::Result<()> {
    let Some(steps) = path_to(event_type) else {
        anyhow::bail!(
            "unknown event type `{event_type}`; stile trigger knows:\n  {}",
            crate::event_types::BUILT_IN.join("\n  ")
        );
    };
    if !key.starts_with("vk_test_") {
        anyhow::bail!("stile trigger needs a test key (vk_test_...): pass --api-key or set STILE_API_KEY");
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .proxy(None)
        .build()
        .into();
    let client = Client { agent, base: base.trim_end_matches('/').to_string(), key: key.to_string() };
    let session = client.post("/v1/verification_sessions", &json!({"type": "identity"}))?;
    let id = session["id"].as_str().unwrap_or_default().to_string();
    println!("created session {id}");
    let line = |event_type: &str, event: &str| println!("  {event_type:<EVENT_TYPE_WIDTH$}  {event}");
    line("verification_session.created", &client.latest_event(&id)?);
    for step in steps {
        let path = match *step {
            "cancel" => format!("/v1/verification_sessions/{id}/cancel"),
            action => format!("/v1/test_helpers/verification_sessions/{id}/{action}"),
        };
        let moved = client.post(&path, &json!({}))?;
        let status = moved["status"].as_str().unwrap_or("?");
        line(&format!("verification_session.{status}"), &client.latest_event(&id)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_event_type_has_a_path_that_ends_in_it() {
        for event_type in crate::event_types::BUILT_IN {
            let steps = path_to(event_type).unwrap_or_else(|| panic!("{event_type}"));
            let last = steps.last().map_or("created", |s| match *s {
                "process" => "processing",
                "require_input" => "requires_input",
                "verify" => "verified",
                "fail" => "failed",
                "cancel" => "cancelled",
                "expire" => "expired",
                other => other,
            });
            assert_eq!(format!("verification_session.{last}"), event_type);
        }
        assert!(path_to("invoice.paid").is_none());
        assert!(crate::event_types::BUILT_IN.iter().all(|t| t.len() <= EVENT_TYPE_WIDTH));
    }
}
