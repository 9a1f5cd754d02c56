//! A member's `/status` (JSON over HTTP/1.0), reduced to what the run looks at.

use std::time::Duration;

/// How long one status request may take: a member that cannot answer in this time counts as
/// not answering (it may be paused, or its node task busy).
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// What a member says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Its id.
    pub id: u64,
    /// `leader`, `follower`, `candidate` or `precandidate`.
    pub role: String,
    /// Its term.
    pub term: u64,
    /// The leader it follows, if it knows one.
    pub leader: Option<u64>,
    /// Its commit index.
    pub commit_index: u64,
    /// The index applied to its store.
    pub applied_index: u64,
    /// CRC32C of its store, if the member reports one.
    pub store_digest: Option<String>,
}

/// GETs `/status` from `addr`; `None` if the member does not answer in time or the answer is
/// not the JSON expected.
pub async fn fetch(addr: &str) -> Option<Status> {
    let json = tokio::time::timeout(STATUS_TIMEOUT, client::status::fetch(addr))
        .await
        .ok()??;
    parse(&json)
}

/// The fields of a `/status` body this run uses.
fn parse(json: &serde_json::Value) -> Option<Status> {
    Some(Status {
        id: json["id"].as_u64()?,
        role: json["role"].as_str()?.to_owned(),
        term: json["term"].as_u64()?,
        leader: json["leader"].as_u64(),
        commit_index: json["commit_index"].as_u64()?,
        applied_index: json["applied_index"].as_u64()?,
        store_digest: json["store_digest"].as_str().map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_it_needs() {
        let body = r#"{"id":2,"role":"follower","term":7,"leader":3,"commit_index":10,
            "applied_index":9,"store_digest":"abcd","files":1}"#;
        let status = parse(&serde_json::from_str(body).unwrap());
        assert_eq!(
            status,
            Some(Status {
                id: 2,
                role: "follower".into(),
                term: 7,
                leader: Some(3),
                commit_index: 10,
                applied_index: 9,
                store_digest: Some("abcd".into()),
            })
        );
        assert_eq!(parse(&serde_json::json!({})), None);
    }
}
