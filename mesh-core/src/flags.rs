//! Envoy response flags: the short codes (`UH`, `UF`, `NR`, …) that explain, in access logs and
//! in the `response_flags` metric label, why a request ended the way it did.
//!
//! [`ResponseFlags`] is a small bit set carried as a response extension; layers add to it as
//! they act (a retry layer adds `URX`, a fault layer `FI`), and telemetry reads it at the end.

use crate::{BoxError, error::FlaggedError};
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
            /// Every flag, in the order they print: the request's own flags first (fault
            /// injection), then the upstream's outcome, then `URX` when retries ran out, then
            /// how the downstream ended — `DI,UF,URX`. This is the reference's `UF,URX`, and
            /// Envoy's flag-bit order for the common pairs (`UF,URX`, `UT,URX`, `UC,DC`);
            /// Envoy 1.30+ prints the order its filters happened to set them in, which puts
            /// `DI` first too but can put `URX` before the upstream's flag.
            ///
            /// ```
            /// use mesh_core::ResponseFlag;
            /// assert_eq!(ResponseFlag::ALL[0], ResponseFlag::FailedLocalHealthCheck);
            /// assert!(ResponseFlag::ALL.contains(&ResponseFlag::FaultInjected));
            /// let shorts: Vec<_> = ResponseFlag::ALL.iter().map(|f| f.short()).collect();
            /// assert_eq!(&shorts[5..], ["DI", "FI", "UH", "UO", "UF", "UT", "LR", "UR", "UC", "UPE", "DF", "URX", "DC", "DR", "SI", "DT"]);
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
    FailedLocalHealthCheck = "LH", "FailedLocalHealthCheck", "The local service failed its health check (503).";
    DownstreamProtocolError = "DPE", "DownstreamProtocolError", "Downstream HTTP protocol error.";
    NoRouteFound = "NR", "NoRouteFound", "No route for the request (404, or 502 for a blocked host).";
    NoClusterFound = "NC", "NoClusterFound", "Upstream cluster not found.";
    RateLimited = "RL", "RateLimited", "Locally rate limited (429).";
    DelayInjected = "DI", "DelayInjected", "Request delayed by fault injection.";
    FaultInjected = "FI", "FaultInjected", "Request aborted by fault injection.";
    NoHealthyUpstream = "UH", "NoHealthyUpstream", "No healthy host in the upstream cluster (503).";
    UpstreamOverflow = "UO", "UpstreamOverflow", "Circuit breaker overflow (503).";
    UpstreamConnectionFailure = "UF", "UpstreamConnectionFailure", "Upstream connect failed (503).";
    UpstreamRequestTimeout = "UT", "UpstreamRequestTimeout", "Upstream request timeout (504).";
    LocalReset = "LR", "LocalReset", "Connection local reset (503).";
    UpstreamRemoteReset = "UR", "UpstreamRemoteReset", "Upstream remote reset (503).";
    UpstreamConnectionTermination = "UC", "UpstreamConnectionTermination", "Upstream connection terminated (503).";
    UpstreamProtocolError = "UPE", "UpstreamProtocolError", "Upstream HTTP protocol error.";
    DnsResolutionFailed = "DF", "DnsResolutionFailed", "DNS resolution failed.";
    UpstreamRetryLimitExceeded = "URX", "UpstreamRetryLimitExceeded", "Retry limit reached.";
    DownstreamConnectionTermination = "DC", "DownstreamConnectionTermination", "The downstream connection terminated.";
    DownstreamRemoteReset = "DR", "DownstreamRemoteReset", "The downstream reset the stream.";
    StreamIdleTimeout = "SI", "StreamIdleTimeout", "Stream idle timeout (408).";
    DurationTimeout = "DT", "DurationTimeout", "Maximum connection or stream duration exceeded.";
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

    /// Adds every flag of `other`.
    ///
    /// ```
    /// use mesh_core::{ResponseFlag, ResponseFlags};
    /// let mut flags = ResponseFlags::of(ResponseFlag::UpstreamConnectionFailure);
    /// flags.insert_all(ResponseFlags::of(ResponseFlag::UpstreamRetryLimitExceeded));
    /// assert_eq!(flags.to_string(), "UF,URX");
    /// ```
    pub fn insert_all(&mut self, other: ResponseFlags) {
        self.0 |= other.0;
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

    /// `%RESPONSE_FLAGS%` as Envoy prints it, in pieces: the short codes with `,` between
    /// them, or `-` by itself when there are none. [`Display`](fmt::Display) writes these, and
    /// so may a writer that is not a formatter.
    ///
    /// ```
    /// use mesh_core::{ResponseFlag, ResponseFlags};
    /// let mut flags = ResponseFlags::of(ResponseFlag::UpstreamConnectionFailure);
    /// flags.insert(ResponseFlag::UpstreamRetryLimitExceeded);
    /// assert_eq!(flags.printed().collect::<String>(), "UF,URX");
    /// assert_eq!(ResponseFlags::default().printed().collect::<String>(), "-");
    /// ```
    pub fn printed(self) -> impl Iterator<Item = &'static str> {
        let none = self.is_empty().then_some("-");
        let codes = self.iter().enumerate().flat_map(|(i, flag)| {
            let comma = (i > 0).then_some(",");
            comma.into_iter().chain([flag.short()])
        });
        none.into_iter().chain(codes)
    }
}

impl From<ResponseFlag> for ResponseFlags {
    fn from(flag: ResponseFlag) -> Self {
        ResponseFlags::of(flag)
    }
}

impl fmt::Display for ResponseFlags {
    /// [`ResponseFlags::printed`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.printed().try_for_each(|piece| f.write_str(piece))
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

/// Adds `flag` to the outcome of a request, whichever it is: to a response's
/// [`ResponseFlags`] ([`mark`]), or to an error's ([`FlaggedError::mark`]), so that the local
/// reply it becomes carries it.
///
/// ```
/// use mesh_core::{BoxError, MeshError, ResponseFlag, flags::mark_outcome, local_reply::error_to_response};
/// let failed: Result<http::Response<()>, BoxError> = Err(MeshError::Timeout.into());
/// let failed = mark_outcome(failed, ResponseFlag::UpstreamRetryLimitExceeded);
/// assert_eq!(error_to_response(&failed.unwrap_err()).extensions().get::<mesh_core::ResponseFlags>().unwrap().to_string(), "UT,URX");
/// let answered = mark_outcome(Ok::<_, BoxError>(http::Response::new(())), ResponseFlag::DelayInjected);
/// assert_eq!(answered.unwrap().extensions().get::<mesh_core::ResponseFlags>().unwrap().to_string(), "DI");
/// ```
pub fn mark_outcome<B>(
    outcome: Result<http::Response<B>, BoxError>,
    flag: ResponseFlag,
) -> Result<http::Response<B>, BoxError> {
    match outcome {
        Ok(mut response) => {
            mark(&mut response, flag);
            Ok(response)
        }
        Err(error) => Err(FlaggedError::mark(error, flag)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_print_in_envoys_order() {
        let print = |flags: &[ResponseFlag]| {
            let mut set = ResponseFlags::default();
            flags.iter().for_each(|f| set.insert(*f));
            set.to_string()
        };
        use ResponseFlag::*;
        // Inserted in another order than the one printed: the order is the request's life
        // (see `ResponseFlag::ALL`), not the one in which our layers mark them on the way out.
        assert_eq!(
            print(&[UpstreamRetryLimitExceeded, UpstreamConnectionFailure]),
            "UF,URX"
        );
        assert_eq!(
            print(&[UpstreamRetryLimitExceeded, UpstreamRequestTimeout]),
            "UT,URX"
        );
        assert_eq!(
            print(&[UpstreamRetryLimitExceeded, DelayInjected]),
            "DI,URX"
        );
        assert_eq!(
            print(&[
                UpstreamRetryLimitExceeded,
                UpstreamConnectionFailure,
                DelayInjected
            ]),
            "DI,UF,URX"
        );
        assert_eq!(
            print(&[
                DownstreamConnectionTermination,
                UpstreamConnectionTermination
            ]),
            "UC,DC"
        );
        assert_eq!(print(&[UpstreamRequestTimeout, DelayInjected]), "DI,UT");
    }

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
