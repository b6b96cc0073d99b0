//! The metadata store conformance suite run against every backend, one binary: SQLite, and
//! PostgreSQL and MariaDB as real servers.

mod server;

mod mariadb;
mod postgres;
mod sqlite;
