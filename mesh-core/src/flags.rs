//! Envoy response flags: the short codes (`UH`, `UF`, `NR`, …) that explain, in access logs and
//! in the `response_flags` metric label, why a request ended the way it did.
//!
//! [`ResponseFlags`] is a small bit set carried as a response extension; layers add to it as
//! they act (a retry layer adds `URX`, a fault layer `FI`), and telemetry reads it at the end.

use std::fmt;

macro_rules! response_flags {
    ($($variant:ident = $short:literal, $long:literal, $doc:literal;)*) => {
        /// One Envoy response flag.
        ///
        /// ```
        /// use mesh_core::{MeshError, ResponseFlag};
        /// let flag = MeshError::Timeout.flag().unwrap();
        /// assert_eq!(flag, ResponseFlag::UpstreamRequestTimeout);
        /// assert_eq!(flag.to_string(), "UT");
        /// ```
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum ResponseFlag {
            $(#[doc = $doc] $variant,)*
        }

        impl ResponseFlag {
            /// Every flag, in Envoy's order.
            ///
            /// ```
            /// use mesh_core::ResponseFlag;
            /// assert_eq!(ResponseFlag::ALL[0], ResponseFlag::NoHealthyUpstream);
            /// assert!(ResponseFlag::ALL.contains(&ResponseFlag::FaultInjected));
            /// let shorts: Vec<_> = ResponseFlag::ALL.iter().map(|f| f.short()).collect();
            /// assert_eq!(&shorts[..3], ["UH", "UF", "UO"]);
            /// ```
            pub const ALL: &'static [ResponseFlag] = &[$(ResponseFlag::$variant,)*];

            /// The short code Envoy prints in `%RESPONSE_FLAGS%` (`UH`, `URX`, …).
            ///
            /// ```
            /// use mesh_core::ResponseFlag;
            /// assert_eq!(ResponseFlag::UpstreamRetryLimitExceeded.short(), "URX");
            /// assert_eq!(ResponseFlag::NoRouteFound.short(), "NR");
            /// ```
            pub const fn short(self) -> &'static str {
                match self { $(ResponseFlag::$variant => $short,)* }
            }

            /// The long name Envoy prints in `%RESPONSE_FLAGS_LONG%`.
            ///
            /// ```
            /// use mesh_core::ResponseFlag;
            /// assert_eq!(ResponseFlag::UpstreamOverflow.long(), "UpstreamOverflow");
            /// assert_eq!(ResponseFlag::DelayInjected.long(), "DelayInjected");
            /// ```
            pub const fn long(self) -> &'static str {
                match self { $(ResponseFlag::$variant => $long,)* }
            }
        }
    };
}

response_flags! {
    NoHealthyUpstream = "UH", "NoHealthyUpstream", "No healthy host in the upstream cluster (503).";
    UpstreamConnectionFailure = "UF", "UpstreamConnectionFailure", "Upstream connect failed (503).";
    UpstreamOverflow = "UO", "UpstreamOverflow", "Circuit breaker overflow (503).";
    NoRouteFound = "NR", "NoRouteFound", "No route for the request (404, or 502 for a blocked host).";
    UpstreamRetryLimitExceeded = "URX", "UpstreamRetryLimitExceeded", "Retry limit reached.";
    NoClusterFound = "NC", "NoClusterFound", "Upstream cluster not found.";
    DurationTimeout = "DT", "DurationTimeout", "Maximum connection or stream duration exceeded.";
    DownstreamConnectionTermination = "DC", "DownstreamConnectionTermination", "The downstream connection terminated.";
    FailedLocalHealthCheck = "LH", "FailedLocalHealthCheck", "The local service failed its health check (503).";
    UpstreamRequestTimeout = "UT", "UpstreamRequestTimeout", "Upstream request timeout (504).";
    LocalReset = "LR", "LocalReset", "Connection local reset (503).";
    UpstreamRemoteReset = "UR", "UpstreamRemoteReset", "Upstream remote reset (503).";
    UpstreamConnectionTermination = "UC", "UpstreamConnectionTermination", "Upstream connection terminated (503).";
    DelayInjected = "DI", "DelayInjected", "Request delayed by fault injection.";
    FaultInjected = "FI", "FaultInjected", "Request aborted by fault injection.";
    RateLimited = "RL", "RateLimited", "Locally rate limited (429).";
    UpstreamProtocolError = "UPE", "UpstreamProtocolError", "Upstream HTTP protocol error.";
    DownstreamProtocolError = "DPE", "DownstreamProtocolError", "Downstream HTTP protocol error.";
    StreamIdleTimeout = "SI", "StreamIdleTimeout", "Stream idle timeout (408).";
    DnsResolutionFailed = "DF", "DnsResolutionFailed", "DNS resolution failed.";
    DownstreamRemoteReset = "DR", "DownstreamRemoteReset", "The downstream reset the stream.";
}

impl fmt::Display for ResponseFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

/// A set of [`ResponseFlag`]s, carried as a response extension.
///
/// Displays as Envoy does: short codes joined with `,`, or `-` when empty.
///
/// ```
/// use mesh_core::{ResponseFlag, ResponseFlags};
/// let mut flags = ResponseFlags::default();
/// assert_eq!(flags.to_string(), "-");
/// flags.insert(ResponseFlag::UpstreamConnectionFailure);
/// flags.insert(ResponseFlag::UpstreamRetryLimitExceeded);
/// assert_eq!(flags.to_string(), "UF,URX");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResponseFlags(u32);

impl ResponseFlags {
    /// A set holding one flag.
    ///
    /// ```
    /// use mesh_core::{ResponseFlag, ResponseFlags};
    /// let flags = ResponseFlags::of(ResponseFlag::NoHealthyUpstream);
    /// assert!(flags.contains(ResponseFlag::NoHealthyUpstream));
    /// assert_eq!(flags, ResponseFlag::NoHealthyUpstream.into());
    /// assert_eq!(flags.to_string(), "UH");
    /// ```
    pub const fn of(flag: ResponseFlag) -> Self {
        ResponseFlags(1 << flag as u8)
    }

    /// Adds `flag` to the set.
    ///
    /// ```
    /// use mesh_core::{ResponseFlag, ResponseFlags};
    /// let mut flags = ResponseFlags::default();
    /// flags.insert(ResponseFlag::UpstreamRequestTimeout);
    /// flags.insert(ResponseFlag::UpstreamRequestTimeout);
    /// assert_eq!(flags.iter().count(), 1, "inserting twice is a no-op");
    /// ```
    pub fn insert(&mut self, flag: ResponseFlag) {
        self.0 |= 1 << flag as u8;
    }

    /// Whether `flag` is in the set.
    ///
    /// ```
    /// use mesh_core::{ResponseFlag, ResponseFlags};
    /// let flags = ResponseFlags::of(ResponseFlag::FaultInjected);
    /// assert!(flags.contains(ResponseFlag::FaultInjected));
    /// assert!(!flags.contains(ResponseFlag::DelayInjected));
    /// ```
    pub const fn contains(self, flag: ResponseFlag) -> bool {
        self.0 & (1 << flag as u8) != 0
    }

    /// The set as bits (bit `n` is the `n`th flag of [`ResponseFlag::ALL`]), for use as a key.
    ///
    /// ```
    /// use mesh_core::{ResponseFlag, ResponseFlags};
    /// assert_eq!(ResponseFlags::default().bits(), 0);
    /// assert_eq!(ResponseFlags::of(ResponseFlag::ALL[0]).bits(), 1);
    /// assert_eq!(ResponseFlags::of(ResponseFlag::ALL[2]).bits(), 0b100);
    /// ```
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether the set is empty.
    ///
    /// ```
    /// use mesh_core::{ResponseFlag, ResponseFlags};
    /// let mut flags = ResponseFlags::default();
    /// assert!(flags.is_empty());
    /// flags.insert(ResponseFlag::RateLimited);
    /// assert!(!flags.is_empty());
    /// ```
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The flags in the set, in Envoy's order.
    ///
    /// ```
    /// use mesh_core::{ResponseFlag, ResponseFlags};
    /// let mut flags = ResponseFlags::of(ResponseFlag::UpstreamRetryLimitExceeded);
    /// flags.insert(ResponseFlag::NoHealthyUpstream);
    /// let listed: Vec<_> = flags.iter().collect();
    /// assert_eq!(listed, [ResponseFlag::NoHealthyUpstream, ResponseFlag::UpstreamRetryLimitExceeded]);
    /// ```
    pub fn iter(self) -> impl Iterator<Item = ResponseFlag> {
        ResponseFlag::ALL
            .iter()
            .copied()
            .filter(move |f| self.contains(*f))
    }
}

impl From<ResponseFlag> for ResponseFlags {
    fn from(flag: ResponseFlag) -> Self {
        ResponseFlags::of(flag)
    }
}

impl fmt::Display for ResponseFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        for (i, flag) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(flag.short())?;
        }
        Ok(())
    }
}

/// Adds `flag` to the [`ResponseFlags`] of `response`, creating them if absent.
///
/// ```
/// use mesh_core::{ResponseFlag, ResponseFlags, flags::mark};
/// let mut response = http::Response::new(());
/// mark(&mut response, ResponseFlag::DelayInjected);
/// assert_eq!(response.extensions().get::<ResponseFlags>().unwrap().to_string(), "DI");
/// ```
pub fn mark<B>(response: &mut http::Response<B>, flag: ResponseFlag) {
    match response.extensions_mut().get_mut::<ResponseFlags>() {
        Some(flags) => flags.insert(flag),
        None => {
            response.extensions_mut().insert(ResponseFlags::of(flag));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_has_a_distinct_bit_and_code() {
        assert!(ResponseFlag::ALL.len() <= 32);
        let mut seen = std::collections::HashSet::new();
        for flag in ResponseFlag::ALL {
            assert!(seen.insert(flag.short()), "duplicate {flag}");
            let set = ResponseFlags::of(*flag);
            assert_eq!(set.iter().collect::<Vec<_>>(), vec![*flag]);
        }
    }
}
