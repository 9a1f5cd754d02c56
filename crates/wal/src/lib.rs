//! The raftfs durable log. (Being written.)
