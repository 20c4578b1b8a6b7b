//! Statements prepared once per connection: each of stile's statements is parsed and
//! planned by the database the first time a connection runs it, and only bound and
//! executed after (deadpool's per-connection cache), which halves the round trips of the
//! hot path.

use std::borrow::Cow;

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

/// A statement's parameters, owned, so a [`Pipeline`] can hold them until it runs.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

/// Statements sent together: each prepared through the connection's cache, in order, then
/// all executed in one round trip (tokio-postgres pipelines the requests made before any
/// answer is awaited), which the database runs one after another in the order given. For
/// a transaction's writes, none of which needs another's answer: a dozen of them cost one
/// wait for the database instead of a dozen.
#[derive(Default)]
pub(super) struct Pipeline {
    statements: Vec<(Cow<'static, str>, Vec<Param>)>,
}

impl Pipeline {
    /// Adds `sql` with `params`, to run after what was added before.
    pub(super) fn push(&mut self, sql: impl Into<Cow<'static, str>>, params: Vec<Param>) {
        self.statements.push((sql.into(), params));
    }

    /// Runs the statements, in order; the first error, if any (a failed statement aborts
    /// the transaction, so the ones after it fail too).
    pub(super) async fn run(self, client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
        let mut prepared = Vec::with_capacity(self.statements.len());
        for (sql, params) in &self.statements {
            prepared.push((client.prepare_cached(sql).await?, params));
        }
        // Each request is sent when its future is first polled, which `try_join_all` does
        // in order.
        let runs = prepared.iter().map(|(statement, params)| async move {
            let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
            client.execute(statement, &params).await
        });
        futures_util::future::try_join_all(runs).await?;
        Ok(())
    }
}
