//! An example CRM in SQLite: a small contact table for screen pops, and the call log.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use opencti_core::{AgentId, CallId, Error, ErrorKind, Result};
use rusqlite::{params, Connection, OptionalExtension};

use crate::crm::{CallLogEntry, Contact, Crm, PhoneContact};

/// The main columns of one `call_log` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallLogRow {
    /// The call's id.
    pub call: String,
    /// The other party's number.
    pub number: Option<String>,
    /// How the call ended.
    pub outcome: String,
    /// The wrap-up disposition, once recorded.
    pub disposition: Option<String>,
}

/// A CRM in one SQLite file: `contacts` (looked up by number) and `call_log`.
#[derive(Clone)]
pub struct SqliteCrm {
    db: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteCrm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteCrm").finish_non_exhaustive()
    }
}

fn db_error(e: rusqlite::Error) -> Error {
    Error::new(ErrorKind::Other, format!("SQLite: {}", e)).with_source(e)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS contacts (
    number  TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    company TEXT,
    account TEXT,
    tier    TEXT,
    notes   TEXT
);
CREATE TABLE IF NOT EXISTS call_log (
    id          INTEGER PRIMARY KEY,
    agent       TEXT NOT NULL,
    device      TEXT NOT NULL,
    call        TEXT NOT NULL,
    direction   TEXT NOT NULL,
    number      TEXT,
    queue       TEXT,
    started_at  INTEGER NOT NULL,
    answered_at INTEGER,
    ended_at    INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    parties     TEXT NOT NULL,
    disposition TEXT,
    UNIQUE (agent, call)
);";

impl SqliteCrm {
    /// Opens (or creates) the database at `path`, with its tables.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let connection = Connection::open(path.as_ref()).map_err(db_error)?;
        Self::with(connection)
    }

    /// A database in memory, for tests.
    pub fn in_memory() -> Result<Self> {
        Self::with(Connection::open_in_memory().map_err(db_error)?)
    }

    fn with(connection: Connection) -> Result<Self> {
        connection.execute_batch(SCHEMA).map_err(db_error)?;
        Ok(SqliteCrm {
            db: Arc::new(Mutex::new(connection)),
        })
    }

    /// Adds (or replaces) a contact.
    pub fn add_contact(&self, number: &str, contact: &Contact) -> Result<()> {
        self.run(|db| {
            db.execute(
                "INSERT OR REPLACE INTO contacts (number, name, company, account, tier, notes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    number,
                    contact.name,
                    contact.company,
                    contact.account,
                    contact.tier,
                    contact.notes
                ],
            )
            .map(|_| ())
        })
    }

    /// Seeds the small demo CRM: the callers of the shipped scenarios.
    pub fn seed_demo(&self) -> Result<()> {
        let people = [
            (
                "+441632960001",
                "Ada Lovelace",
                "Analytical Engines Ltd",
                "A-1001",
                "gold",
                "Prefers email follow-ups.",
            ),
            (
                "+441632960002",
                "Charles Babbage",
                "Difference Works",
                "A-2002",
                "silver",
                "Reported an outage last week.",
            ),
            (
                "+441632960003",
                "Grace Hopper",
                "Compiler Co",
                "A-3003",
                "platinum",
                "Escalate billing questions to the team lead.",
            ),
            (
                "+441632960004",
                "Alan Turing",
                "Bletchley Systems",
                "A-4004",
                "gold",
                "",
            ),
            (
                "+441632960005",
                "Katherine Johnson",
                "Trajectory Labs",
                "A-5005",
                "silver",
                "Renewal due next month.",
            ),
            (
                "+441632960006",
                "Edsger Dijkstra",
                "Shortest Path Inc",
                "A-6006",
                "bronze",
                "",
            ),
        ];
        for (number, name, company, account, tier, notes) in people {
            self.add_contact(
                number,
                &Contact {
                    name: name.into(),
                    company: Some(company.into()),
                    account: Some(account.into()),
                    tier: Some(tier.into()),
                    notes: (!notes.is_empty()).then(|| notes.to_string()),
                },
            )?;
        }
        Ok(())
    }

    /// Every call log row, oldest first.
    pub fn call_log(&self) -> Result<Vec<CallLogRow>> {
        self.run(|db| {
            let mut statement =
                db.prepare("SELECT call, number, outcome, disposition FROM call_log ORDER BY id")?;
            let rows = statement.query_map([], |r| {
                Ok(CallLogRow {
                    call: r.get(0)?,
                    number: r.get(1)?,
                    outcome: r.get(2)?,
                    disposition: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    fn run<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        f(&db).map_err(db_error)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.run(f))
            .await
            .map_err(|e| Error::new(ErrorKind::Other, format!("SQLite task: {}", e)))?
    }
}

#[async_trait]
impl Crm for SqliteCrm {
    async fn lookup(&self, number: &str) -> Result<Option<Contact>> {
        let number = number.to_string();
        self.blocking(move |db| {
            db.query_row(
                "SELECT name, company, account, tier, notes FROM contacts WHERE number = ?1",
                params![number],
                |r| {
                    Ok(Contact {
                        name: r.get(0)?,
                        company: r.get(1)?,
                        account: r.get(2)?,
                        tier: r.get(3)?,
                        notes: r.get(4)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn search(&self, text: &str, limit: usize) -> Result<Vec<PhoneContact>> {
        // `%` and `_` in the search are letters, not wildcards.
        let pattern = format!(
            "%{}%",
            text.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.blocking(move |db| {
            let mut statement = db.prepare(
                "SELECT number, name, company, account, tier, notes FROM contacts
                 WHERE name LIKE ?1 ESCAPE '\\' OR number LIKE ?1 ESCAPE '\\'
                    OR company LIKE ?1 ESCAPE '\\'
                 ORDER BY name, number LIMIT ?2",
            )?;
            let rows = statement.query_map(params![pattern, limit], |r| {
                Ok(PhoneContact {
                    number: r.get(0)?,
                    contact: Contact {
                        name: r.get(1)?,
                        company: r.get(2)?,
                        account: r.get(3)?,
                        tier: r.get(4)?,
                        notes: r.get(5)?,
                    },
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn log_call(&self, entry: &CallLogEntry) -> Result<()> {
        let e = entry.clone();
        let changed = self
            .blocking(move |db| {
                // A call logged again (the same call, later) updates its row; a row is never
                // replaced by another call that has the same id (one started at another time).
                db.execute(
                    "INSERT INTO call_log
                   (agent, device, call, direction, number, queue, started_at, answered_at,
                    ended_at, outcome, parties)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (agent, call) DO UPDATE SET
                   device = excluded.device, direction = excluded.direction,
                   number = excluded.number, queue = excluded.queue,
                   answered_at = excluded.answered_at, ended_at = excluded.ended_at,
                   outcome = excluded.outcome, parties = excluded.parties
                 WHERE call_log.started_at = excluded.started_at",
                    params![
                        e.agent.as_str(),
                        e.device.as_str(),
                        e.call.as_str(),
                        match e.direction {
                            opencti_core::Direction::Inbound => "inbound",
                            opencti_core::Direction::Outbound => "outbound",
                        },
                        e.number,
                        e.queue,
                        e.started_at.as_micros() as i64,
                        e.answered_at.map(|t| t.as_micros() as i64),
                        e.ended_at.as_micros() as i64,
                        e.outcome,
                        e.parties.join(", "),
                    ],
                )
            })
            .await?;
        if changed == 0 {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "call {} of agent {} is in the call log already for another call (one started at another time); the log keeps the first",
                    entry.call, entry.agent
                ),
            ));
        }
        Ok(())
    }

    async fn set_disposition(
        &self,
        agent: &AgentId,
        calls: &[CallId],
        disposition: &str,
    ) -> Result<()> {
        let agent = agent.as_str().to_string();
        let calls: Vec<String> = calls.iter().map(|c| c.as_str().to_string()).collect();
        let disposition = disposition.to_string();
        self.blocking(move |db| {
            for call in &calls {
                db.execute(
                    "UPDATE call_log SET disposition = ?1 WHERE agent = ?2 AND call = ?3",
                    params![disposition, agent, call],
                )?;
            }
            Ok(())
        })
        .await
    }
}
