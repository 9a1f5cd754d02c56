//! Log replication (Raft 5.3, thesis 3.5 and 10.2.1): guards against logs that diverge, entries
//! erased by late or duplicated messages, slow or stuck catch-up, and unbounded sending.

use bytes::Bytes;
use raft::testing::Cluster;
use raft::{AppendOutcome, Config, Entry, Event, LogIndex, Millis, Payload, Term};

use crate::common::*;

/// A follower (node 1 of 3) whose durable log has `terms`, in `term`.
fn follower(term: u64, terms: &[u64]) -> raft::Node {
    node_with(3, term, terms, config(1)).0
}

#[test]
fn section_5_3_follower_rejects_when_the_previous_entry_does_not_match() {
    // Follower log terms [1, 1, 2]. (prev index, prev term, accepted)
    let table = [
        ((0, 0), true),
        ((2, 1), true),
        ((3, 2), true),
        ((3, 1), false),
        ((4, 2), false),
        ((u64::MAX - 1, 3), false),
    ];
    for (prev, accepted) in table {
        let mut node = follower(3, &[1, 1, 2]);
        let acts = step(&mut node, 10, append(2, 3, prev, vec![], 0));
        let resp = append_responses(&acts);
        assert_eq!(resp.len(), 1, "prev {prev:?}");
        let ok = matches!(resp[0].1.outcome, AppendOutcome::Success { .. });
        assert_eq!(ok, accepted, "prev {prev:?}");
    }
}

#[test]
fn section_5_3_follower_appends_after_the_matching_entry() {
    let mut node = follower(2, &[1, 1]);
    let acts = step(
        &mut node,
        10,
        append(2, 2, (2, 1), vec![entry(3, 2), entry(4, 2)], 0),
    );
    assert_eq!(stores(&acts), vec![entry(3, 2), entry(4, 2)]);
    assert!(truncations(&acts).is_empty());
    assert_eq!(node.last_index(), LogIndex(4));
}

/// Entries `indexes` of term `term` whose commands are slices of one shared buffer, as a
/// message decoded from a peer's frame gives them; returns the buffer too.
fn sliced_entries(indexes: std::ops::RangeInclusive<u64>, term: u64) -> (Bytes, Vec<Entry>) {
    let frame = Bytes::from((0..=255u8).collect::<Vec<u8>>());
    let entries = indexes
        .map(|i| Entry {
            index: LogIndex(i),
            term: Term(term),
            payload: Payload::Command(frame.slice(i as usize..i as usize + 1)),
        })
        .collect();
    (frame, entries)
}

/// True if the stored entries' commands lie in `frame`'s memory.
fn stored_in(frame: &Bytes, stored: &[Entry]) -> Vec<bool> {
    let range = frame.as_ptr_range();
    stored
        .iter()
        .map(|e| match &e.payload {
            Payload::Command(data) => range.contains(&data.as_ptr()),
            _ => false,
        })
        .collect()
}

/// A follower keeps the commands of a request it takes whole as they came (slices of the frame,
/// no copy), but copies those it keeps from a request it takes only in part: the entries it
/// dropped must not stay in memory through the frame they share.
#[test]
fn kept_entries_share_their_frame_only_if_all_of_it_is_kept() {
    let mut node = follower(2, &[1, 1]);
    let (frame, entries) = sliced_entries(3..=4, 2);
    let acts = step(&mut node, 10, append(2, 2, (2, 1), entries, 0));
    assert_eq!(stored_in(&frame, &stores(&acts)), vec![true, true]);

    // Entries 3 and 4 again (held already), with 5 and 6: only 5 and 6 are kept.
    let (frame, entries) = sliced_entries(3..=6, 2);
    let acts = step(&mut node, 20, append(2, 2, (2, 1), entries, 0));
    let stored = stores(&acts);
    assert_eq!(
        stored.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![LogIndex(5), LogIndex(6)]
    );
    assert_eq!(stored_in(&frame, &stored), vec![false, false]);
    assert_eq!(node.last_index(), LogIndex(6));
}

#[test]
fn section_5_3_truncation_only_at_a_real_conflict() {
    // Follower log terms [1, 1, 2, 2]; the leader of term 3.
    // (request prev, request entries, expected truncation, expected log terms afterwards)
    type Row = ((u64, u64), Vec<Entry>, Option<u64>, Vec<u64>);
    let table: Vec<Row> = vec![
        // A late, shorter request that matches: nothing is erased.
        ((1, 1), vec![entry(2, 1)], None, vec![1, 1, 2, 2]),
        // A duplicate of what is there: nothing changes.
        (
            (2, 1),
            vec![entry(3, 2), entry(4, 2)],
            None,
            vec![1, 1, 2, 2],
        ),
        // An empty request in the middle of the log: nothing changes.
        ((2, 1), vec![], None, vec![1, 1, 2, 2]),
        // Same index, different term: drop from there and replace.
        ((2, 1), vec![entry(3, 3)], Some(3), vec![1, 1, 3]),
        // Matching entries, then a conflict further on.
        (
            (2, 1),
            vec![entry(3, 2), entry(4, 3), entry(5, 3)],
            Some(4),
            vec![1, 1, 2, 3, 3],
        ),
        // Entries beyond the end: appended, nothing truncated.
        ((4, 2), vec![entry(5, 3)], None, vec![1, 1, 2, 2, 3]),
    ];
    for (prev, entries, truncated, expected) in table {
        let mut node = follower(3, &[1, 1, 2, 2]);
        let acts = step(&mut node, 10, append(2, 3, prev, entries.clone(), 0));
        let cut = truncations(&acts);
        assert_eq!(
            cut,
            truncated.map(LogIndex).into_iter().collect::<Vec<_>>(),
            "{entries:?}"
        );
        let terms: Vec<u64> = (1..=node.last_index().0)
            .map(|i| node.entry(LogIndex(i)).unwrap().term.0)
            .collect();
        assert_eq!(terms, expected, "{entries:?}");
        // The truncation, if any, comes before the store that replaces it.
        let positions: Vec<usize> = acts
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                matches!(
                    a,
                    raft::Action::LogTruncate { .. } | raft::Action::LogStore { .. }
                )
            })
            .map(|(k, _)| k)
            .collect();
        if truncated.is_some() {
            assert!(matches!(
                acts[positions[0]],
                raft::Action::LogTruncate { .. }
            ));
            assert!(matches!(acts[positions[1]], raft::Action::LogStore { .. }));
        }
    }
}

#[test]
fn section_5_3_reordered_appends_never_lose_entries() {
    let mut node = follower(2, &[]);
    let long = append(2, 2, (0, 0), vec![entry(1, 2), entry(2, 2), entry(3, 2)], 0);
    let short = append(2, 2, (0, 0), vec![entry(1, 2)], 0);
    step(&mut node, 10, long.clone());
    step(&mut node, 11, short);
    step(&mut node, 12, long);
    assert_eq!(node.last_index(), LogIndex(3));
}

#[test]
fn committed_entries_are_never_truncated_even_by_a_broken_leader() {
    let mut node = follower(2, &[1, 1]);
    step(&mut node, 10, append(2, 2, (2, 1), vec![], 2));
    assert_eq!(node.commit_index(), LogIndex(2));
    let acts = step(&mut node, 11, append(2, 2, (1, 1), vec![entry(2, 2)], 2));
    assert!(truncations(&acts).is_empty());
    assert_eq!(node.entry(LogIndex(2)).unwrap().term, Term(1));
}

#[test]
fn malformed_appends_are_ignored() {
    // Gaps, decreasing terms, terms above the leader's: a leader never sends these.
    let bad = [
        vec![entry(2, 2)],              // does not start at prev + 1
        vec![entry(1, 2), entry(3, 2)], // gap
        vec![entry(1, 2), entry(2, 1)], // term decreases
        vec![entry(1, 9)],              // term above the leader's
    ];
    for entries in bad {
        let mut node = follower(2, &[]);
        let acts = step(&mut node, 10, append(2, 2, (0, 0), entries.clone(), 0));
        assert!(stores(&acts).is_empty(), "{entries:?}");
        assert_eq!(node.last_index(), LogIndex(0));
    }
}

#[test]
fn section_5_3_fast_backtracking_hint_skips_a_whole_term() {
    // Follower log terms [1, 1, 2, 2, 2, 2]; leader probes at (7, 3), then at (6, 3).
    let mut node = follower(3, &[1, 1, 2, 2, 2, 2]);
    let acts = step(&mut node, 10, append(2, 3, (6, 3), vec![], 0));
    match append_responses(&acts)[0].1.outcome {
        AppendOutcome::Reject {
            rejected,
            hint_index,
            hint_term,
        } => {
            assert_eq!(rejected, LogIndex(6));
            // The follower's last entry at or before 6 with term <= 3.
            assert_eq!((hint_index, hint_term), (LogIndex(6), Term(2)));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let acts = step(&mut node, 10, append(2, 3, (9, 3), vec![], 0));
    match append_responses(&acts)[0].1.outcome {
        AppendOutcome::Reject { hint_index, .. } => assert_eq!(hint_index, LogIndex(6)),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Builds the leader of the paper's figure 7 (thesis figure 3.6): log terms
/// [1,1,1,4,4,5,5,6,6,6], elected in term 8 as node 1 of 3 (node 3's vote is faked); runs it
/// against a follower (node 2) whose log has `follower_terms` over a perfect link, and returns
/// the number of AppendEntries round trips until the follower's log equals the leader's.
fn figure_7_round_trips(follower_terms: &[u64], follower_term: u64) -> usize {
    let leader_terms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let mut cfg = config(1);
    cfg.check_quorum = false;
    let (mut leader, _) = node_with(3, 7, &leader_terms, cfg);
    let (mut fol, _) = node_with(3, follower_term, follower_terms, config(2));
    let mut to_leader = elect(&mut leader, 5000);
    assert_eq!(leader.term(), Term(8));
    let mut trips = 0;
    while !same_log(&leader, &fol) {
        assert!(trips < 20, "follower {follower_terms:?} never caught up");
        let reqs: Vec<_> = append_requests(&to_leader)
            .into_iter()
            .filter(|(to, _)| *to == n(2))
            .collect();
        trips += 1;
        let mut back = Vec::new();
        for (_, req) in reqs {
            let acts = fol.step(
                Millis(5000),
                msg(1, raft::Message::AppendEntriesRequest(req)),
            );
            back.extend(sends(&persist_all(&mut fol, 5000, &acts)));
        }
        to_leader = Vec::new();
        for (_, m) in back {
            to_leader.extend(leader.step(Millis(5000), msg(2, m)));
        }
    }
    trips
}

fn same_log(a: &raft::Node, b: &raft::Node) -> bool {
    a.last_index() == b.last_index()
        && (1..=a.last_index().0)
            .all(|i| a.entry(LogIndex(i)).map(|e| e.term) == b.entry(LogIndex(i)).map(|e| e.term))
}

#[test]
fn section_5_3_figure_7_followers_catch_up_in_few_round_trips() {
    // The follower logs (a)-(f) of figure 7, and the round trips needed: the first probe (at
    // the leader's last old entry) lands at once for (c) and (d); otherwise it fails and the
    // hint makes the second land, whatever the length of the divergence (without the hint, (f)
    // would take one probe per entry).
    let table: &[(&[u64], u64, usize)] = &[
        (&[1, 1, 1, 4, 4, 5, 5, 6, 6], 6, 2), // (a) missing one entry
        (&[1, 1, 1, 4], 4, 2),                // (b) missing many
        (&[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], 6, 1), // (c) one extra entry: the probe lands
        (&[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], 7, 1), // (d) extra entries of a newer term
        (&[1, 1, 1, 4, 4, 4, 4], 4, 2),       // (e) missing and extra
        (&[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], 3, 2), // (f) many extra entries of old terms
    ];
    for (terms, term, expected) in table {
        let trips = figure_7_round_trips(terms, *term);
        assert_eq!(trips, *expected, "follower {terms:?}");
    }
}

fn pipelining_leader(max_inflight: usize, max_entries: usize) -> (raft::Node, u64) {
    let mut cfg = config(1);
    cfg.max_inflight_msgs = max_inflight;
    cfg.max_entries_per_msg = max_entries;
    let (mut leader, _) = node_with(3, 1, &[], cfg);
    elect(&mut leader, 3000);
    // Node 2 acknowledges the no-op: it moves to replicate mode.
    let term = leader.term().0;
    step(&mut leader, 3000, append_success(2, term, 1));
    (leader, term)
}

fn propose(leader: &mut raft::Node, now: u64, count: usize) -> Vec<raft::Action> {
    let batch = (0..count)
        .map(|k| (raft::ProposalId(k as u64), Bytes::from(vec![k as u8])))
        .collect();
    step(leader, now, Event::Append(batch))
}

#[test]
fn section_10_2_1_pipelining_window_bounds_messages_in_flight() {
    let (mut leader, term) = pipelining_leader(3, 2);
    // 10 entries, 2 per message: only 3 messages may be in flight to node 2.
    let acts = propose(&mut leader, 3001, 10);
    let to_2: Vec<_> = append_requests(&acts)
        .into_iter()
        .filter(|(to, _)| *to == n(2))
        .map(|(_, r)| r)
        .collect();
    assert_eq!(to_2.len(), 3);
    assert_eq!(
        to_2.iter().map(|r| r.prev_log_index.0).collect::<Vec<_>>(),
        [1, 3, 5],
        "sent back to back without waiting for answers"
    );
    assert!(to_2.iter().all(|r| r.entries.len() == 2));
    // Node 3 never answered the no-op: still probing, one message at a time.
    let to_3 = append_requests(&acts)
        .into_iter()
        .filter(|(to, _)| *to == n(3))
        .count();
    assert_eq!(to_3, 0, "its probe is still outstanding");
    // An answer covering the first two messages frees two slots.
    let acts = step(&mut leader, 3002, append_success(2, term, 5));
    let to_2: Vec<_> = append_requests(&acts)
        .into_iter()
        .map(|(_, r)| r.prev_log_index.0)
        .collect();
    assert_eq!(to_2, [7, 9]);
}

#[test]
fn section_10_2_1_batching_respects_entry_and_byte_limits() {
    let mut cfg = config(1);
    cfg.max_entries_per_msg = 100;
    cfg.max_bytes_per_msg = 3 * (100 + raft::entry::ENTRY_OVERHEAD_BYTES);
    let (mut leader, _) = node_with(3, 1, &[], cfg);
    elect(&mut leader, 3000);
    let term = leader.term().0;
    step(&mut leader, 3000, append_success(2, term, 1));
    let batch = (0..7)
        .map(|k| {
            let size = if k == 3 { 10_000 } else { 100 };
            (raft::ProposalId(k), Bytes::from(vec![0u8; size]))
        })
        .collect();
    let acts = step(&mut leader, 3001, Event::Append(batch));
    let sizes: Vec<usize> = append_requests(&acts)
        .into_iter()
        .filter(|(to, _)| *to == n(2))
        .map(|(_, r)| r.entries.len())
        .collect();
    // Three small ones fill a message; the large one goes alone; then the rest.
    assert_eq!(sizes, [3, 1, 3]);
}

#[test]
fn section_10_2_1_leader_sends_before_its_own_write_is_durable() {
    let (mut leader, _) = pipelining_leader(4, 10);
    let acts = propose(&mut leader, 3001, 1);
    assert_eq!(stores(&acts).len(), 1);
    assert!(
        !append_requests(&acts).is_empty(),
        "replication does not wait for the local fsync"
    );
}

#[test]
fn stale_answers_never_move_progress_backwards() {
    let (mut leader, term) = pipelining_leader(8, 1);
    propose(&mut leader, 3001, 5);
    step(&mut leader, 3002, append_success(2, term, 6));
    // Late answers: a smaller success and a rejection below the match.
    let acts = step(&mut leader, 3003, append_success(2, term, 3));
    assert!(append_requests(&acts).is_empty());
    let reject = msg(
        2,
        raft::Message::AppendEntriesResponse(raft::AppendEntriesResponse {
            term: Term(term),
            outcome: AppendOutcome::Reject {
                rejected: LogIndex(2),
                hint_index: LogIndex(0),
                hint_term: Term(0),
            },
        }),
    );
    let acts = step(&mut leader, 3004, reject);
    assert!(
        append_requests(&acts).is_empty(),
        "no resend from the start"
    );
    // Proof that match is still 6: a new entry goes out right after it.
    let acts = propose(&mut leader, 3005, 1);
    let req = last_append_to(&acts, 2).unwrap();
    assert_eq!(req.prev_log_index, LogIndex(6));
}

#[test]
fn a_rejection_in_replicate_mode_falls_back_to_probing_from_the_match() {
    let (mut leader, term) = pipelining_leader(8, 1);
    propose(&mut leader, 3001, 4); // entries 2..=5 in flight
    // The follower lost the message carrying entry 3 and rejects the one after (prev 3).
    let reject = msg(
        2,
        raft::Message::AppendEntriesResponse(raft::AppendEntriesResponse {
            term: Term(term),
            outcome: AppendOutcome::Reject {
                rejected: LogIndex(3),
                hint_index: LogIndex(2),
                hint_term: Term(term),
            },
        }),
    );
    let acts = step(&mut leader, 3002, reject);
    let reqs: Vec<_> = append_requests(&acts)
        .into_iter()
        .filter(|(to, _)| *to == n(2))
        .collect();
    assert_eq!(reqs.len(), 1, "one probe at a time");
    assert_eq!(
        reqs[0].1.prev_log_index,
        LogIndex(1),
        "from just after the match"
    );
}

#[test]
fn a_paused_probe_resumes_on_a_heartbeat_answer() {
    let (mut leader, _) = node_with(3, 1, &[], config(1));
    elect(&mut leader, 3000);
    let term = leader.term();
    // Node 3's probe (the no-op) is outstanding; new entries do not go to it.
    let acts = propose(&mut leader, 3001, 1);
    assert!(last_append_to(&acts, 3).is_none());
    let hb = msg(
        3,
        raft::Message::HeartbeatResponse(raft::HeartbeatResponse {
            term,
            read_round: 0,
        }),
    );
    let acts = step(&mut leader, 3100, hb);
    assert!(
        last_append_to(&acts, 3).is_some(),
        "the probe is sent again"
    );
}

#[test]
fn lagging_follower_catches_up_in_a_cluster() {
    let mut c = Cluster::with_config(3, 9, |cfg: &mut Config| cfg.max_entries_per_msg = 7);
    let leader = c.run_until_leader(10_000).unwrap();
    let lagging = c.ids().into_iter().find(|&id| id != leader).unwrap();
    c.isolate(lagging);
    for k in 0..20 {
        c.propose(leader, vec![Bytes::from(vec![k])]);
        c.deliver_all();
    }
    c.heal();
    c.advance(500);
    let node = c.node(lagging).unwrap();
    assert_eq!(node.last_index(), c.node(leader).unwrap().last_index());
    assert_eq!(node.commit_index(), c.node(leader).unwrap().commit_index());
    assert_eq!(c.applied(lagging).len(), c.applied(leader).len());
}

#[test]
fn commands_are_applied_everywhere_with_their_bytes() {
    let mut c = Cluster::new(5, 2);
    let leader = c.run_until_leader(10_000).unwrap();
    let cmds: Vec<Bytes> = (0..50u8)
        .map(|k| Bytes::from(vec![k; k as usize]))
        .collect();
    c.propose(leader, cmds.clone());
    c.advance(HEARTBEAT_MS);
    for id in c.ids() {
        let applied: Vec<Bytes> = c
            .applied(id)
            .iter()
            .filter_map(|e| match &e.payload {
                Payload::Command(b) => Some(b.clone()),
                Payload::Noop | Payload::Membership(_) => None,
            })
            .collect();
        assert_eq!(applied, cmds, "node {id}");
    }
}
