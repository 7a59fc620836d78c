//! `INFO` text parsed into typed sections.
//!
//! Parsing never fails and never panics: a line that is not `name:value`
//! is skipped, a value that does not parse as the field's type leaves the
//! field `None`, and every field, known or not, stays in
//! [`ServerInfo::sections`] as text, so a field of a newer server is one map
//! look-up away.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Serialize;

/// The longest `INFO` text [`ServerInfo::parse`] reads (8 MiB); the rest is
/// ignored. A real server's text is a few kilobytes.
pub const MAX_INFO_BYTES: usize = 8 << 20;

/// One field's text turned into a typed value; `None` when it does not parse.
trait InfoValue: Sized {
    fn parse_info(text: &str) -> Option<Self>;
}

macro_rules! from_str_values {
    ($($t:ty),*) => { $(
        impl InfoValue for $t {
            fn parse_info(text: &str) -> Option<Self> {
                <$t>::from_str(text.trim()).ok()
            }
        }
    )* };
}
from_str_values!(u16, u32, u64, i64);

impl InfoValue for f64 {
    fn parse_info(text: &str) -> Option<Self> {
        // `used_memory_peak_perc:100.25%` and friends carry a unit.
        let t = text.trim().trim_end_matches('%');
        f64::from_str(t).ok().filter(|f| f.is_finite())
    }
}

impl InfoValue for bool {
    fn parse_info(text: &str) -> Option<Self> {
        match text.trim() {
            "1" | "yes" => Some(true),
            "0" | "no" => Some(false),
            _ => None,
        }
    }
}

impl InfoValue for String {
    fn parse_info(text: &str) -> Option<Self> {
        Some(text.to_owned())
    }
}

/// Declares one typed section: every listed field is `Option<type>`, set
/// when the server sent it and it parsed; the rest go to `other`.
macro_rules! section {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize)]
        #[non_exhaustive]
        pub struct $name {
            $( $(#[$fdoc])* pub $field: Option<$ty>, )*
            /// Fields of the section this type does not name (or whose
            /// value did not parse), as text.
            pub other: BTreeMap<String, String>,
        }

        impl $name {
            fn from_fields(fields: &BTreeMap<String, String>) -> Self {
                let mut s = $name::default();
                for (k, v) in fields {
                    match k.as_str() {
                        $( stringify!($field) => match <$ty as InfoValue>::parse_info(v) {
                            Some(parsed) => s.$field = Some(parsed),
                            None => { s.other.insert(k.clone(), v.clone()); }
                        }, )*
                        _ => { s.other.insert(k.clone(), v.clone()); }
                    }
                }
                s
            }
        }
    };
}

section!(
    /// `# Server`: version, mode, process.
    ServerSection {
        /// `redis_version`.
        redis_version: String,
        /// `redis_mode` (`server_mode` on Valkey): `standalone`, `cluster`
        /// or `sentinel`.
        redis_mode: String,
        /// `os`.
        os: String,
        /// `arch_bits`.
        arch_bits: u32,
        /// `process_id`.
        process_id: u64,
        /// `run_id`.
        run_id: String,
        /// `tcp_port`.
        tcp_port: u16,
        /// `uptime_in_seconds`.
        uptime_in_seconds: u64,
        /// `hz`.
        hz: u32,
        /// `executable`.
        executable: String,
        /// `config_file`.
        config_file: String,
    }
);

section!(
    /// `# Clients`: connections.
    ClientsSection {
        /// `connected_clients`.
        connected_clients: u64,
        /// `cluster_connections`.
        cluster_connections: u64,
        /// `maxclients`.
        maxclients: u64,
        /// `blocked_clients`.
        blocked_clients: u64,
        /// `tracking_clients`.
        tracking_clients: u64,
        /// `clients_in_timeout_table`.
        clients_in_timeout_table: u64,
        /// `client_recent_max_input_buffer`.
        client_recent_max_input_buffer: u64,
        /// `client_recent_max_output_buffer`.
        client_recent_max_output_buffer: u64,
    }
);

section!(
    /// `# Memory`: used, peak, fragmentation, limits.
    MemorySection {
        /// `used_memory` (bytes).
        used_memory: u64,
        /// `used_memory_rss` (bytes).
        used_memory_rss: u64,
        /// `used_memory_peak` (bytes).
        used_memory_peak: u64,
        /// `used_memory_overhead` (bytes).
        used_memory_overhead: u64,
        /// `used_memory_dataset` (bytes).
        used_memory_dataset: u64,
        /// `used_memory_lua` (bytes).
        used_memory_lua: u64,
        /// `used_memory_scripts` (bytes).
        used_memory_scripts: u64,
        /// `number_of_cached_scripts`.
        number_of_cached_scripts: u64,
        /// `total_system_memory` (bytes).
        total_system_memory: u64,
        /// `maxmemory` (bytes; 0: no limit).
        maxmemory: u64,
        /// `maxmemory_policy`.
        maxmemory_policy: String,
        /// `mem_fragmentation_ratio`.
        mem_fragmentation_ratio: f64,
        /// `mem_fragmentation_bytes` (may be negative).
        mem_fragmentation_bytes: i64,
        /// `allocator_frag_ratio`.
        allocator_frag_ratio: f64,
        /// `mem_allocator`.
        mem_allocator: String,
    }
);

section!(
    /// `# Stats`: commands, traffic, hits and misses, evictions.
    StatsSection {
        /// `total_connections_received`.
        total_connections_received: u64,
        /// `total_commands_processed`.
        total_commands_processed: u64,
        /// `instantaneous_ops_per_sec`.
        instantaneous_ops_per_sec: u64,
        /// `total_net_input_bytes`.
        total_net_input_bytes: u64,
        /// `total_net_output_bytes`.
        total_net_output_bytes: u64,
        /// `instantaneous_input_kbps`.
        instantaneous_input_kbps: f64,
        /// `instantaneous_output_kbps`.
        instantaneous_output_kbps: f64,
        /// `rejected_connections`.
        rejected_connections: u64,
        /// `expired_keys`.
        expired_keys: u64,
        /// `evicted_keys`.
        evicted_keys: u64,
        /// `keyspace_hits`.
        keyspace_hits: u64,
        /// `keyspace_misses`.
        keyspace_misses: u64,
        /// `pubsub_channels`.
        pubsub_channels: u64,
        /// `pubsub_patterns`.
        pubsub_patterns: u64,
        /// `latest_fork_usec`.
        latest_fork_usec: u64,
        /// `total_error_replies`.
        total_error_replies: u64,
        /// `sync_full`.
        sync_full: u64,
    }
);

section!(
    /// `# Persistence`: RDB and AOF state.
    PersistenceSection {
        /// `loading`.
        loading: bool,
        /// `rdb_changes_since_last_save`.
        rdb_changes_since_last_save: u64,
        /// `rdb_bgsave_in_progress`.
        rdb_bgsave_in_progress: bool,
        /// `rdb_last_save_time` (Unix seconds).
        rdb_last_save_time: i64,
        /// `rdb_last_bgsave_status`.
        rdb_last_bgsave_status: String,
        /// `aof_enabled`.
        aof_enabled: bool,
        /// `aof_rewrite_in_progress`.
        aof_rewrite_in_progress: bool,
        /// `aof_last_write_status`.
        aof_last_write_status: String,
    }
);

section!(
    /// `# Replication`, without the `slaveN` lines (see
    /// [`ServerInfo::replicas`]).
    ReplicationSection {
        /// `role`: `master` or `slave`.
        role: String,
        /// `connected_slaves`.
        connected_slaves: u64,
        /// `master_host` (on a replica).
        master_host: String,
        /// `master_port` (on a replica).
        master_port: u16,
        /// `master_link_status` (on a replica): `up` or `down`.
        master_link_status: String,
        /// `master_replid`.
        master_replid: String,
        /// `master_repl_offset`.
        master_repl_offset: i64,
        /// `slave_repl_offset` (on a replica).
        slave_repl_offset: i64,
        /// `repl_backlog_size`.
        repl_backlog_size: u64,
    }
);

/// One `slaveN:ip=...,port=...,state=...,offset=...,lag=...` line of a
/// primary's replication section.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ReplicaInfo {
    /// `ip`.
    pub ip: Option<String>,
    /// `port`.
    pub port: Option<u16>,
    /// `state` (`online`, `wait_bgsave`, ...).
    pub state: Option<String>,
    /// `offset`.
    pub offset: Option<i64>,
    /// `lag` (seconds).
    pub lag: Option<u64>,
}

/// One `dbN:keys=...,expires=...,avg_ttl=...` line of `# Keyspace`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct KeyspaceDb {
    /// The database number.
    pub db: u32,
    /// `keys`.
    pub keys: Option<u64>,
    /// `expires`: keys with a TTL.
    pub expires: Option<u64>,
    /// `avg_ttl` (milliseconds).
    pub avg_ttl_ms: Option<u64>,
}

/// One `cmdstat_<name>:calls=...,usec=...` line of `# Commandstats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CommandStat {
    /// The command (`set`, `config|set` for a subcommand).
    pub command: String,
    /// `calls`.
    pub calls: Option<u64>,
    /// `usec`: total time spent, in microseconds.
    pub usec: Option<u64>,
    /// `usec_per_call`.
    pub usec_per_call: Option<f64>,
    /// `rejected_calls`.
    pub rejected_calls: Option<u64>,
    /// `failed_calls`.
    pub failed_calls: Option<u64>,
}

/// A server's `INFO` reply, typed section by section.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ServerInfo {
    /// `# Server`.
    pub server: ServerSection,
    /// `# Clients`.
    pub clients: ClientsSection,
    /// `# Memory`.
    pub memory: MemorySection,
    /// `# Stats`.
    pub stats: StatsSection,
    /// `# Replication`.
    pub replication: ReplicationSection,
    /// The replicas a primary lists in `# Replication`.
    pub replicas: Vec<ReplicaInfo>,
    /// `# Persistence`.
    pub persistence: PersistenceSection,
    /// `# Keyspace`, one entry per database that holds keys.
    pub keyspace: Vec<KeyspaceDb>,
    /// `# Commandstats`, one entry per command called since the last
    /// `CONFIG RESETSTAT`.
    pub commandstats: Vec<CommandStat>,
    /// Every field of every section as text: section name in lower case
    /// (`memory`, `cluster`, `errorstats`, ...) to field to value. Fields
    /// that appear before any section header go under `""`.
    pub sections: BTreeMap<String, BTreeMap<String, String>>,
}

/// `a=1,b=2` into pairs; pieces without `=` are skipped.
fn pairs(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split(',').filter_map(|p| p.split_once('='))
}

impl ServerInfo {
    /// Parses the text of an `INFO` reply. Never fails and never panics: a
    /// line that is not `name:value` is skipped, a value that does not
    /// parse leaves its field `None` (the text stays in `other` and in
    /// [`ServerInfo::sections`]). Reads at most [`MAX_INFO_BYTES`].
    pub fn parse(text: &str) -> ServerInfo {
        let mut end = text.len().min(MAX_INFO_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let text = text.get(..end).unwrap_or_default();
        let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut current = String::new();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(header) = line.strip_prefix('#') {
                current = header.trim().to_ascii_lowercase();
                sections.entry(current.clone()).or_default();
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            sections
                .entry(current.clone())
                .or_default()
                .insert(name.to_owned(), value.to_owned());
        }
        let empty = BTreeMap::new();
        let get = |name: &str| sections.get(name).unwrap_or(&empty);

        let mut replication_fields = get("replication").clone();
        let mut replicas = Vec::new();
        let slave_lines: Vec<String> = replication_fields
            .keys()
            .filter(|k| {
                k.strip_prefix("slave")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .cloned()
            .collect();
        for k in slave_lines {
            if let Some(v) = replication_fields.remove(&k) {
                let mut r = ReplicaInfo::default();
                for (pk, pv) in pairs(&v) {
                    match pk {
                        "ip" => r.ip = Some(pv.to_owned()),
                        "port" => r.port = InfoValue::parse_info(pv),
                        "state" => r.state = Some(pv.to_owned()),
                        "offset" => r.offset = InfoValue::parse_info(pv),
                        "lag" => r.lag = InfoValue::parse_info(pv),
                        _ => {}
                    }
                }
                replicas.push(r);
            }
        }

        let keyspace = get("keyspace")
            .iter()
            .filter_map(|(k, v)| {
                let db = k.strip_prefix("db")?.parse().ok()?;
                let mut d = KeyspaceDb {
                    db,
                    ..KeyspaceDb::default()
                };
                for (pk, pv) in pairs(v) {
                    match pk {
                        "keys" => d.keys = InfoValue::parse_info(pv),
                        "expires" => d.expires = InfoValue::parse_info(pv),
                        "avg_ttl" => d.avg_ttl_ms = InfoValue::parse_info(pv),
                        _ => {}
                    }
                }
                Some(d)
            })
            .collect();

        let commandstats = get("commandstats")
            .iter()
            .filter_map(|(k, v)| {
                let command = k.strip_prefix("cmdstat_")?;
                let mut c = CommandStat {
                    command: command.to_owned(),
                    ..CommandStat::default()
                };
                for (pk, pv) in pairs(v) {
                    match pk {
                        "calls" => c.calls = InfoValue::parse_info(pv),
                        "usec" => c.usec = InfoValue::parse_info(pv),
                        "usec_per_call" => c.usec_per_call = InfoValue::parse_info(pv),
                        "rejected_calls" => c.rejected_calls = InfoValue::parse_info(pv),
                        "failed_calls" => c.failed_calls = InfoValue::parse_info(pv),
                        _ => {}
                    }
                }
                Some(c)
            })
            .collect();

        let mut server = ServerSection::from_fields(get("server"));
        // Valkey 8 names the mode `server_mode` (and keeps `redis_version`
        // for compatibility).
        if server.redis_mode.is_none() {
            server.redis_mode = server.other.get("server_mode").cloned();
        }
        ServerInfo {
            server,
            clients: ClientsSection::from_fields(get("clients")),
            memory: MemorySection::from_fields(get("memory")),
            stats: StatsSection::from_fields(get("stats")),
            replication: ReplicationSection::from_fields(&replication_fields),
            replicas,
            persistence: PersistenceSection::from_fields(get("persistence")),
            keyspace,
            commandstats,
            sections,
        }
    }

    /// A field's text by section and name (`field("memory", "used_memory")`).
    pub fn field(&self, section: &str, name: &str) -> Option<&str> {
        self.sections.get(section)?.get(name).map(String::as_str)
    }

    /// Keys in every database (the sum of `# Keyspace`).
    pub fn total_keys(&self) -> u64 {
        self.keyspace
            .iter()
            .filter_map(|d| d.keys)
            .fold(0u64, u64::saturating_add)
    }

    /// `keyspace_hits / (hits + misses)`; `None` before any read.
    pub fn hit_ratio(&self) -> Option<f64> {
        let hits = self.stats.keyspace_hits?;
        let misses = self.stats.keyspace_misses?;
        let total = hits.saturating_add(misses);
        (total > 0).then(|| hits as f64 / total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANDALONE: &str = include_str!("testdata/info-standalone-7.0.txt");
    const PRIMARY: &str = include_str!("testdata/info-primary-7.0.txt");
    const REPLICA: &str = include_str!("testdata/info-replica-7.0.txt");

    #[test]
    fn parses_a_real_standalone_server() {
        let info = ServerInfo::parse(STANDALONE);
        assert_eq!(info.server.redis_version.as_deref(), Some("7.0.15"));
        assert_eq!(info.server.redis_mode.as_deref(), Some("standalone"));
        assert_eq!(info.server.tcp_port, Some(23917));
        assert_eq!(info.clients.connected_clients, Some(1));
        assert_eq!(info.memory.used_memory, Some(967160));
        assert_eq!(info.memory.mem_fragmentation_ratio, Some(7.80));
        assert_eq!(info.memory.maxmemory_policy.as_deref(), Some("noeviction"));
        assert_eq!(info.stats.total_error_replies, Some(1));
        assert_eq!(info.persistence.aof_enabled, Some(false));
        assert_eq!(info.replication.role.as_deref(), Some("master"));
        assert_eq!(
            info.keyspace,
            vec![KeyspaceDb {
                db: 0,
                keys: Some(2),
                expires: Some(1),
                avg_ttl_ms: Some(0),
            }]
        );
        assert_eq!(info.total_keys(), 2);
        let set = info
            .commandstats
            .iter()
            .find(|c| c.command == "set")
            .expect("cmdstat_set");
        assert_eq!(set.calls, Some(2));
        assert_eq!(set.usec, Some(18));
        assert_eq!(set.usec_per_call, Some(9.0));
        assert!(info.commandstats.iter().any(|c| c.command == "config|set"));
        // Unknown fields are kept, typed ones are in their struct.
        assert_eq!(
            info.memory
                .other
                .get("used_memory_human")
                .map(String::as_str),
            Some("944.49K")
        );
        assert_eq!(info.field("memory", "used_memory"), Some("967160"));
        assert!(!info.memory.other.contains_key("used_memory"));
        assert_eq!(info.hit_ratio(), None);
    }

    #[test]
    fn parses_a_primary_and_its_replica() {
        let primary = ServerInfo::parse(PRIMARY);
        assert_eq!(primary.replication.connected_slaves, Some(1));
        assert_eq!(
            primary.replicas,
            vec![ReplicaInfo {
                ip: Some("127.0.0.1".into()),
                port: Some(23918),
                state: Some("wait_bgsave".into()),
                offset: Some(0),
                lag: Some(0),
            }]
        );
        assert!(!primary.replication.other.contains_key("slave0"));
        let replica = ServerInfo::parse(REPLICA);
        assert_eq!(replica.replication.role.as_deref(), Some("slave"));
        assert_eq!(replica.replication.master_port, Some(23917));
        assert_eq!(
            replica.replication.master_link_status.as_deref(),
            Some("down")
        );
        assert!(replica.replicas.is_empty());
    }

    #[test]
    fn hostile_text_never_panics_and_keeps_what_it_can() {
        let hostile = "no header:1\r\n# \r\n:empty-name\r\n#Memory\r\nused_memory:-5\r\n\
                       used_memory_rss:99999999999999999999999\r\nmem_fragmentation_ratio:NaN\r\n\
                       maxmemory:\u{1F4A5}\r\nused_memory_peak:12\r\n# Keyspace\r\ndbx:keys=1\r\n\
                       db1:keys=,expires=zz,,=,avg_ttl=3\r\ndb2\r\n# Commandstats\r\ncmdstat_:calls=1\r\n\
                       cmdstat_get:calls=a=b,usec\r\n# Replication\r\nslave:ip=x\r\nslave0:\r\n\
                       slave1:ip=::1,port=70000\r\n# Server\r\ntcp_port:6379:6380\r\nline without colon";
        let info = ServerInfo::parse(hostile);
        assert_eq!(info.field("", "no header"), Some("1"));
        assert_eq!(info.memory.used_memory, None);
        assert_eq!(
            info.memory.other.get("used_memory").map(String::as_str),
            Some("-5")
        );
        assert_eq!(info.memory.used_memory_rss, None);
        assert_eq!(info.memory.mem_fragmentation_ratio, None);
        assert_eq!(info.memory.maxmemory, None);
        assert_eq!(info.memory.used_memory_peak, Some(12));
        assert_eq!(
            info.keyspace,
            vec![KeyspaceDb {
                db: 1,
                keys: None,
                expires: None,
                avg_ttl_ms: Some(3),
            }]
        );
        assert_eq!(info.commandstats.len(), 2);
        assert_eq!(info.replicas.len(), 2);
        assert_eq!(info.replicas[1].port, None);
        assert_eq!(info.replicas[1].ip.as_deref(), Some("::1"));
        assert!(info.replication.other.contains_key("slave"));
        assert_eq!(info.server.tcp_port, None);
        for text in ["", "#", "\r\n\r\n", ":", "::::", "# A\r\n# A\r\nx:1"] {
            let _ = ServerInfo::parse(text);
        }
        // Arbitrary bytes, as lossily decoded text.
        let alphabet = b"#:=,\r\n0123456789dbcmdstat_slave abc\xff";
        let mut seed = 7u32;
        for _ in 0..200 {
            let bytes: Vec<u8> = (0..64)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    alphabet[(seed >> 16) as usize % alphabet.len()]
                })
                .collect();
            let _ = ServerInfo::parse(&String::from_utf8_lossy(&bytes));
        }
    }
}
