//! The store's part: which Redis deployment, if any, and how to use it ([`RedisConfig`], defined
//! by the store).

use std::time::Duration;

use secrecy::SecretString;

use super::{
    ConfigError, Settings, invalid,
    values::{comma_list, is_plain_name, seconds_or},
};
use crate::store::{RedisConfig, RedisMode};

/// The prefix used when none is set; also the embedded store's, for diagnostics.
pub(super) const DEFAULT_PREFIX: &str = "sess";

/// The Redis connection settings, or `None` for the embedded store (no Redis address set).
/// At most one of the standalone URL, the Cluster nodes and the Sentinels may be set.
pub(super) fn resolve(s: &Settings) -> Result<Option<RedisConfig>, ConfigError> {
    let prefix = s
        .redis_prefix
        .clone()
        .unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
    if !is_plain_name(&prefix, 32, "-_:.") {
        return Err(invalid(
            "SESSION_REDIS_PREFIX",
            "1-32 characters of a-z, A-Z, 0-9, - _ : .",
        ));
    }
    let url = s.redis_url.clone().filter(|u| !u.trim().is_empty());
    let cluster = urls("REDIS_CLUSTER_NODES", s.redis_cluster_nodes.as_deref())?;
    let sentinels = urls("REDIS_SENTINELS", s.redis_sentinels.as_deref())?;
    let mode = match (url, cluster.is_empty(), sentinels.is_empty()) {
        (None, true, true) => None,
        (Some(url), true, true) => {
            if !is_redis_url(&url) {
                return Err(invalid(
                    "REDIS_URL",
                    "must start with redis://, rediss:// or unix://",
                ));
            }
            Some(RedisMode::Standalone {
                url: SecretString::from(url),
            })
        }
        (None, false, true) => Some(RedisMode::Cluster { nodes: cluster }),
        (None, true, false) => Some(RedisMode::Sentinel {
            sentinels,
            master: s
                .redis_sentinel_master
                .clone()
                .unwrap_or_else(|| "mymaster".to_owned()),
        }),
        _ => {
            return Err(invalid(
                "REDIS_URL",
                "set only one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS",
            ));
        }
    };
    Ok(mode.map(|mode| RedisConfig {
        mode,
        wait_replicas: s.redis_wait_replicas.unwrap_or_default(),
        timeout: seconds_or(s.redis_timeout, Duration::from_secs(1)),
        prefix,
    }))
}

fn is_redis_url(url: &str) -> bool {
    ["redis://", "rediss://", "unix://", "redis+unix://"]
        .iter()
        .any(|p| url.starts_with(p))
}

/// A comma-separated list of Redis addresses (Cluster nodes, Sentinels), kept secret since an
/// address may carry a password.
fn urls(setting: &'static str, value: Option<&str>) -> Result<Vec<SecretString>, ConfigError> {
    comma_list(value)
        .into_iter()
        .map(|u| {
            if is_redis_url(&u) {
                Ok(SecretString::from(u))
            } else {
                Err(invalid(
                    setting,
                    "each entry must start with redis:// or rediss://",
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WaitReplicas;

    #[test]
    fn no_address_is_the_embedded_store() {
        assert!(resolve(&Settings::default()).unwrap().is_none());
    }

    #[test]
    fn replicas_to_wait_for_default_to_auto_on_cluster_too() {
        let redis = resolve(&Settings {
            redis_cluster_nodes: Some("redis://a:1".into()),
            ..Settings::default()
        })
        .unwrap()
        .unwrap();
        assert_eq!(redis.wait_replicas, WaitReplicas::Auto);
        assert_eq!(redis.prefix, "sess");
        assert_eq!(redis.timeout, Duration::from_secs(1));
    }

    #[test]
    fn sentinels_watch_mymaster_unless_told() {
        let redis = resolve(&Settings {
            redis_sentinels: Some("redis://s1:26379, redis://s2:26379".into()),
            ..Settings::default()
        })
        .unwrap()
        .unwrap();
        let RedisMode::Sentinel { sentinels, master } = redis.mode else {
            panic!("{:?}", redis.mode);
        };
        assert_eq!((sentinels.len(), master.as_str()), (2, "mymaster"));
    }
}
