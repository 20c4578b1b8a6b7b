//! Statements prepared once per connection: each of stile's statements is parsed and
//! planned by the database the first time a connection runs it, and only bound and
//! executed after (deadpool's per-connection cache), which halves the round trips of the
//! hot path.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// Runs statements through the connection's cache of prepared statements.
pub(super) trait Cached: GenericClient {
    /// Like `query`, prepared once per connection.
    async fn q(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query(&statement, params).await
    }

    /// Like `query_opt`, prepared once per connection.
    async fn q_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query_opt(&statement, params).await
    }

    /// Like `query_one`, prepared once per connection.
    async fn q_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query_one(&statement, params).await
    }

    /// Like `execute`, prepared once per connection.
    async fn exec(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.execute(&statement, params).await
    }
}

impl<C: GenericClient> Cached for C {}
