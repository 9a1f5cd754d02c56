//! Guards against a pipelining model that cannot catch a broken read barrier: a connection must
//! hand back replies in the order its commands went out (as the server writes them), whatever
//! order the driver answers in, deliver nothing once its node's process is gone, and runs with
//! pipelining clients must really keep several commands in flight.

use bytes::Bytes;
use sim::clock::SimTime;
use sim::connection::Connection;
use sim::{Profile, RunOptions, run};

use crate::common::COMMANDS_PER_RUN;

#[test]
fn replies_leave_a_connection_in_command_order() {
    let mut conn = Connection::new(0, 1, SimTime(0));
    for attempt in [4, 5, 6] {
        assert!(conn.taken(attempt, 7));
    }
    assert!(
        conn.answered(6, Bytes::from_static(b"third")).is_empty(),
        "the last command's reply waits for the earlier ones"
    );
    assert!(conn.answered(5, Bytes::from_static(b"second")).is_empty());
    let out: Vec<u64> = conn
        .answered(4, Bytes::from_static(b"first"))
        .into_iter()
        .map(|(attempt, _)| attempt)
        .collect();
    assert_eq!(out, vec![4, 5, 6]);
}

#[test]
fn a_connection_does_not_survive_its_nodes_process() {
    let mut conn = Connection::new(0, 1, SimTime(0));
    assert!(conn.taken(1, 3));
    assert!(
        !conn.taken(2, 4),
        "a restarted process never saw this socket"
    );
    assert!(conn.broken);
    assert!(conn.answered(1, Bytes::from_static(b"late")).is_empty());
}

#[test]
fn pipelining_clients_keep_commands_in_flight_and_pass_every_check() {
    let mut pipelined_runs = 0;
    for seed in 0..16 {
        let report = run(RunOptions::new(Profile::Mixed, seed, COMMANDS_PER_RUN));
        if let Some(failure) = report.failure {
            panic!("{failure}");
        }
        if report.stats.pipelined > 0 {
            pipelined_runs += 1;
        }
    }
    assert!(
        (4..=12).contains(&pipelined_runs),
        "about half the runs pipeline: {pipelined_runs} of 16"
    );
}
