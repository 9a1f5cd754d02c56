//! The sans-IO protocol codec. (Placeholder: being written.)
