//! The API's shapes end to end: listing order and scope, `Location` on
//! every 202, and what counts against the daily rehydration limit.

mod support;
