//! The file store state machine. (Placeholder: being written.)
