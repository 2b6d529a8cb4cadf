//! The traces' part (`telemetry::traces`): whether spans are exported, where to, and which.
//!
//! Configured by OpenTelemetry's standard variables only, as every OpenTelemetry SDK is, so that
//! the service fits an existing tracing setup without a setting of its own:
//!
//! * `OTEL_EXPORTER_OTLP_ENDPOINT`: the OTLP/HTTP receiver, e.g. a Collector at
//!   `http://otel-collector:4318` (spans go to `<endpoint>/v1/traces`). Unset: no exporter, and
//!   the request path creates no span for it.
//! * `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf`, the only one this build speaks.
//! * `OTEL_SERVICE_NAME`: the `service.name` resource attribute. Default: `session-server`.
//! * `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`: the sampler, as the specification names
//!   them. Default: `parentbased_always_on`.
//!
//! The batch processor's own variables (`OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`, ...)
//! and `OTEL_RESOURCE_ATTRIBUTES` are read by the SDK itself.

use super::{ConfigError, invalid};

/// Where and which spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceConfig {
    /// The OTLP/HTTP endpoint's base URL (`/v1/traces` is appended by the exporter).
    pub endpoint: String,
    pub service_name: String,
    pub sampler: SamplerChoice,
}

/// The samplers of the specification's `OTEL_TRACES_SAMPLER`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerChoice {
    AlwaysOn,
    AlwaysOff,
    /// Sample this fraction of traces, by trace id.
    Ratio(f64),
    /// Follow the caller's sampling decision (`traceparent`); for traces that start here, the
    /// inner choice.
    ParentBased(RootSampler),
}

/// The choice for traces that start at this service, under a parent-based sampler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RootSampler {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
}

const SAMPLERS: &str = "always_on, always_off, traceidratio, parentbased_always_on, \
                        parentbased_always_off, parentbased_traceidratio";

/// Reads the standard variables through `var` (the process environment at start).
pub(super) fn resolve(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<TraceConfig>, ConfigError> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    if let Some(protocol) = set("OTEL_EXPORTER_OTLP_PROTOCOL")
        && protocol.trim() != "http/protobuf"
    {
        return Err(invalid(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            format!("`{protocol}`: this build exports OTLP as http/protobuf only"),
        ));
    }
    let sampler = sampler(set("OTEL_TRACES_SAMPLER"), set("OTEL_TRACES_SAMPLER_ARG"))?;
    let Some(endpoint) = set("OTEL_EXPORTER_OTLP_ENDPOINT") else {
        return Ok(None);
    };
    let endpoint = endpoint.trim().trim_end_matches('/').to_owned();
    match url::Url::parse(&endpoint) {
        Ok(url) if url.scheme() == "http" && url.host().is_some() => {}
        Ok(url) if url.scheme() == "https" => {
            return Err(invalid(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!(
                    "`{endpoint}`: this build sends OTLP over plain HTTP, to a Collector or agent \
                     beside the service (which forwards it with TLS); {} is not supported",
                    url.scheme()
                ),
            ));
        }
        _ => {
            return Err(invalid(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("`{endpoint}`: expected an http:// URL, e.g. http://otel-collector:4318"),
            ));
        }
    }
    Ok(Some(TraceConfig {
        endpoint,
        service_name: set("OTEL_SERVICE_NAME").unwrap_or_else(|| "session-server".to_owned()),
        sampler,
    }))
}

fn sampler(name: Option<String>, arg: Option<String>) -> Result<SamplerChoice, ConfigError> {
    let ratio = || -> Result<f64, ConfigError> {
        let Some(arg) = &arg else { return Ok(1.0) };
        match arg.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => Err(invalid(
                "OTEL_TRACES_SAMPLER_ARG",
                format!("`{arg}`: expected a fraction from 0 to 1"),
            )),
        }
    };
    Ok(match name.as_deref().map(str::trim) {
        None | Some("parentbased_always_on") => SamplerChoice::ParentBased(RootSampler::AlwaysOn),
        Some("parentbased_always_off") => SamplerChoice::ParentBased(RootSampler::AlwaysOff),
        Some("parentbased_traceidratio") => {
            SamplerChoice::ParentBased(RootSampler::Ratio(ratio()?))
        }
        Some("always_on") => SamplerChoice::AlwaysOn,
        Some("always_off") => SamplerChoice::AlwaysOff,
        Some("traceidratio") => SamplerChoice::Ratio(ratio()?),
        Some(other) => {
            return Err(invalid(
                "OTEL_TRACES_SAMPLER",
                format!("`{other}`: expected one of {SAMPLERS}"),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve_with(vars: &[(&str, &str)]) -> Result<Option<TraceConfig>, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        resolve(|name| vars.get(name).cloned())
    }

    #[test]
    fn without_an_endpoint_nothing_is_exported() {
        assert_eq!(resolve_with(&[]).unwrap(), None);
        assert_eq!(
            resolve_with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]).unwrap(),
            None
        );
        assert_eq!(resolve_with(&[("OTEL_SERVICE_NAME", "x")]).unwrap(), None);
    }

    #[test]
    fn an_endpoint_turns_export_on_with_the_standard_defaults() {
        let c = resolve_with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")])
            .unwrap()
            .unwrap();
        assert_eq!(c.endpoint, "http://collector:4318");
        assert_eq!(c.service_name, "session-server");
        assert_eq!(c.sampler, SamplerChoice::ParentBased(RootSampler::AlwaysOn));
        let c = resolve_with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "sessions-eu"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.01"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.service_name, "sessions-eu");
        assert_eq!(
            c.sampler,
            SamplerChoice::ParentBased(RootSampler::Ratio(0.01))
        );
    }

    #[test]
    fn samplers_are_the_specifications() {
        let with =
            |name: &str, arg: Option<&str>| sampler(Some(name.to_owned()), arg.map(str::to_owned));
        assert_eq!(with("always_on", None).unwrap(), SamplerChoice::AlwaysOn);
        assert_eq!(with("always_off", None).unwrap(), SamplerChoice::AlwaysOff);
        assert_eq!(
            with("traceidratio", Some("0.5")).unwrap(),
            SamplerChoice::Ratio(0.5)
        );
        assert_eq!(
            with("traceidratio", None).unwrap(),
            SamplerChoice::Ratio(1.0)
        );
        assert_eq!(
            with("parentbased_always_off", None).unwrap(),
            SamplerChoice::ParentBased(RootSampler::AlwaysOff)
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (
                &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://a:4318")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "sometimes")],
                "OTEL_TRACES_SAMPLER",
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "2"),
                ],
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "NaN"),
                ],
                "OTEL_TRACES_SAMPLER_ARG",
            ),
        ];
        for (vars, named) in cases {
            let err = resolve_with(vars).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid value for {named}: ")),
                "{err}"
            );
        }
    }
}
