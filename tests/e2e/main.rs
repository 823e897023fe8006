//! End-to-end tests: each starts the real server on a fresh database (SQLite, and PostgreSQL
//! when `RKFLOW_TEST_POSTGRES_URL` is set) and speaks GraphQL over HTTP as a front-end would.

mod accounts;
mod audit;
mod documents;
mod follow_up;
mod leaks;
mod lifecycle;
mod permissions;
mod plain;
mod reads;
mod rebuttal;
mod replicas;
mod robustness;
mod security;
mod snapshots;
mod support;
mod visibility;
mod writes;
