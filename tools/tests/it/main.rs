//! Integration tests of the bench tools against real servers on 127.0.0.1.

mod loadgen;
