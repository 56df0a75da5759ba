//! [`SpanReporter`]: spans leave the request path through a bounded queue; a background task
//! batches them and hands each batch to an exporter.
//!
//! Reporting never waits: when the queue is full (the collector is slow or down and batches
//! back up) the span is dropped and counted. A batch is exported when it reaches
//! `batch_size` spans or `flush_interval` has passed, each export bounded by
//! `export_timeout`; a failed export is counted, its spans lost (as Envoy's Zipkin tracer
//! does). The task flushes what is left and ends when every reporter handle is dropped.

use crate::span::FinishedSpan;
use opentelemetry_sdk::trace::SpanExporter;
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};
use tokio::sync::mpsc;

/// Queue and batch sizes and timings.
///
/// ```
/// use mesh_trace::reporter::{ReporterConfig, SpanReporter};
/// # use mesh_trace::{Decision, TraceContext, span::{FinishedSpan, SpanKind}};
/// # use opentelemetry_sdk::trace::InMemorySpanExporter;
/// # use std::{sync::atomic::Ordering, time::{Duration, SystemTime}};
/// # fn span() -> FinishedSpan {
/// #     FinishedSpan {
/// #         context: TraceContext::root(Decision { sampled: true, forced: false, debug: false }),
/// #         kind: SpanKind::Client,
/// #         name: "catalog:80/*".into(),
/// #         start: SystemTime::now(),
/// #         duration: Duration::from_millis(3),
/// #         tags: vec![],
/// #         error: false,
/// #     }
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let exporter = InMemorySpanExporter::default();
/// let config = ReporterConfig { batch_size: 2, flush_interval: Duration::from_secs(3600), ..Default::default() };
/// let reporter = SpanReporter::spawn(exporter.clone(), config);
/// reporter.report(span());
/// reporter.report(span()); // a full batch: exported without waiting for the interval
/// # // Give the background task a moment to run (bounded, so a regression fails instead of hanging).
/// # tokio::time::timeout(Duration::from_secs(5), async {
/// #     while reporter.stats().exported.load(Ordering::Relaxed) < 2 { tokio::task::yield_now().await; }
/// # }).await.unwrap();
/// assert_eq!(exporter.get_finished_spans().unwrap().len(), 2);
/// # });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReporterConfig {
    /// Spans waiting for export at most; more are dropped.
    pub queue_capacity: usize,
    /// Spans per export at most.
    pub batch_size: usize,
    /// A partial batch is exported after this long.
    pub flush_interval: Duration,
    /// An export taking longer fails (Envoy's Zipkin default: 5 s).
    pub export_timeout: Duration,
}

impl Default for ReporterConfig {
    fn default() -> Self {
        ReporterConfig {
            queue_capacity: 4096,
            batch_size: 256,
            flush_interval: Duration::from_secs(1),
            export_timeout: Duration::from_secs(5),
        }
    }
}

/// Counters of a [`SpanReporter`].
///
/// ```
/// use mesh_trace::reporter::{ReporterConfig, SpanReporter};
/// # use mesh_trace::{Decision, TraceContext, span::{FinishedSpan, SpanKind}};
/// # use opentelemetry_sdk::trace::InMemorySpanExporter;
/// # use std::{sync::atomic::Ordering, time::{Duration, SystemTime}};
/// # fn span() -> FinishedSpan {
/// #     FinishedSpan {
/// #         context: TraceContext::root(Decision { sampled: true, forced: false, debug: false }),
/// #         kind: SpanKind::Client,
/// #         name: "catalog:80/*".into(),
/// #         start: SystemTime::now(),
/// #         duration: Duration::from_millis(3),
/// #         tags: vec![],
/// #         error: false,
/// #     }
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let config = ReporterConfig { queue_capacity: 1, ..Default::default() };
/// let reporter = SpanReporter::spawn(InMemorySpanExporter::default(), config);
/// for _ in 0..3 {
///     reporter.report(span()); // the export task has not run yet: the queue fills
/// }
/// let stats = reporter.stats();
/// assert_eq!(stats.reported.load(Ordering::Relaxed), 1);
/// assert_eq!(stats.dropped.load(Ordering::Relaxed), 2);
/// # });
/// ```
#[derive(Debug, Default)]
pub struct ReporterStats {
    /// Spans queued for export.
    pub reported: AtomicU64,
    /// Spans dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Spans the exporter accepted.
    pub exported: AtomicU64,
    /// Spans lost to failed or timed-out exports.
    pub export_failed: AtomicU64,
}

/// Queues finished spans for export; cheap to clone.
///
/// ```
/// use mesh_trace::{Decision, TraceContext, reporter::{ReporterConfig, SpanReporter}, span::{FinishedSpan, SpanKind}};
/// use opentelemetry_sdk::trace::InMemorySpanExporter;
/// use std::{sync::atomic::Ordering, time::{Duration, SystemTime}};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let exporter = InMemorySpanExporter::default();
/// let reporter = SpanReporter::spawn(exporter.clone(), ReporterConfig::default());
/// reporter.report(FinishedSpan {
///     context: TraceContext::root(Decision { sampled: true, forced: false, debug: false }),
///     kind: SpanKind::Server,
///     name: "catalog:80/*".into(),
///     start: SystemTime::now(),
///     duration: Duration::from_millis(3),
///     tags: vec![],
///     error: false,
/// });
/// let stats = reporter.stats().clone();
/// drop(reporter); // the last handle: the task flushes and ends
/// # tokio::time::timeout(Duration::from_secs(5), async {
/// #     while stats.exported.load(Ordering::Relaxed) == 0 { tokio::task::yield_now().await; }
/// # }).await.unwrap();
/// assert_eq!(stats.exported.load(Ordering::Relaxed), 1);
/// assert_eq!(exporter.get_finished_spans().unwrap().len(), 1);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct SpanReporter {
    queue: mpsc::Sender<FinishedSpan>,
    stats: Arc<ReporterStats>,
}

impl SpanReporter {
    /// Starts the export task on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    ///
    /// ```
    /// use mesh_trace::reporter::{ReporterConfig, SpanReporter};
    /// # use mesh_trace::{Decision, TraceContext, span::{FinishedSpan, SpanKind}};
    /// # use opentelemetry_sdk::trace::InMemorySpanExporter;
    /// # use std::{sync::atomic::Ordering, time::{Duration, SystemTime}};
    /// # fn span() -> FinishedSpan {
    /// #     FinishedSpan {
    /// #         context: TraceContext::root(Decision { sampled: true, forced: false, debug: false }),
    /// #         kind: SpanKind::Client,
    /// #         name: "catalog:80/*".into(),
    /// #         start: SystemTime::now(),
    /// #         duration: Duration::from_millis(3),
    /// #         tags: vec![],
    /// #         error: false,
    /// #     }
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// // Degenerate settings are raised to workable ones (here a queue of one span).
    /// let config = ReporterConfig { queue_capacity: 0, batch_size: 0, ..Default::default() };
    /// let reporter = SpanReporter::spawn(InMemorySpanExporter::default(), config);
    /// reporter.report(span());
    /// assert_eq!(reporter.stats().reported.load(Ordering::Relaxed), 1);
    /// # });
    /// ```
    pub fn spawn<E>(exporter: E, config: ReporterConfig) -> Self
    where
        E: SpanExporter + 'static,
    {
        // Degenerate settings would stall or panic the task (a zero interval panics tokio).
        let config = ReporterConfig {
            queue_capacity: config.queue_capacity.max(1),
            batch_size: config.batch_size.max(1),
            flush_interval: config.flush_interval.max(Duration::from_millis(1)),
            export_timeout: config.export_timeout,
        };
        let (queue, spans) = mpsc::channel(config.queue_capacity);
        let stats = Arc::new(ReporterStats::default());
        tokio::spawn(export_loop(exporter, spans, config, stats.clone()));
        SpanReporter { queue, stats }
    }

    /// Queues `span` for export, or drops (and counts) it when the queue is full.
    ///
    /// ```
    /// use mesh_trace::reporter::{ReporterConfig, SpanReporter};
    /// # use mesh_trace::{Decision, TraceContext, span::{FinishedSpan, SpanKind}};
    /// # use opentelemetry_sdk::trace::InMemorySpanExporter;
    /// # use std::{sync::atomic::Ordering, time::{Duration, SystemTime}};
    /// # fn span() -> FinishedSpan {
    /// #     FinishedSpan {
    /// #         context: TraceContext::root(Decision { sampled: true, forced: false, debug: false }),
    /// #         kind: SpanKind::Client,
    /// #         name: "catalog:80/*".into(),
    /// #         start: SystemTime::now(),
    /// #         duration: Duration::from_millis(3),
    /// #         tags: vec![],
    /// #         error: false,
    /// #     }
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let exporter = InMemorySpanExporter::default();
    /// let reporter = SpanReporter::spawn(exporter.clone(), ReporterConfig::default());
    /// let span = span();
    /// let id = span.context.span_id;
    /// reporter.report(span); // never waits
    /// drop(reporter); // the last handle: what is queued is exported
    /// # while exporter.get_finished_spans().unwrap().is_empty() { tokio::task::yield_now().await; }
    /// let exported = exporter.get_finished_spans().unwrap();
    /// assert_eq!(exported[0].span_context.span_id().to_string(), id.to_string());
    /// # });
    /// ```
    pub fn report(&self, span: FinishedSpan) {
        match self.queue.try_send(span) {
            Ok(()) => self.stats.reported.fetch_add(1, Relaxed),
            Err(_) => self.stats.dropped.fetch_add(1, Relaxed),
        };
    }

    /// The reporter's counters.
    ///
    /// ```
    /// use mesh_trace::reporter::{ReporterConfig, SpanReporter};
    /// use opentelemetry_sdk::trace::InMemorySpanExporter;
    /// use std::sync::{Arc, atomic::Ordering};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let reporter = SpanReporter::spawn(InMemorySpanExporter::default(), ReporterConfig::default());
    /// assert!(Arc::ptr_eq(reporter.stats(), reporter.clone().stats())); // shared by the clones
    /// assert_eq!(reporter.stats().dropped.load(Ordering::Relaxed), 0);
    /// # });
    /// ```
    pub fn stats(&self) -> &Arc<ReporterStats> {
        &self.stats
    }
}

async fn export_loop<E: SpanExporter>(
    exporter: E,
    mut spans: mpsc::Receiver<FinishedSpan>,
    config: ReporterConfig,
    stats: Arc<ReporterStats>,
) {
    let mut batch = Vec::with_capacity(config.batch_size);
    // The first flush is one interval away (a plain interval would tick at once).
    let first = tokio::time::Instant::now() + config.flush_interval;
    let mut tick = tokio::time::interval_at(first, config.flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = spans.recv() => match received {
                Some(span) => {
                    batch.push(span);
                    if batch.len() >= config.batch_size {
                        export(&exporter, &mut batch, &config, &stats).await;
                    }
                }
                None => {
                    export(&exporter, &mut batch, &config, &stats).await;
                    return;
                }
            },
            _ = tick.tick() => export(&exporter, &mut batch, &config, &stats).await,
        }
    }
}

async fn export<E: SpanExporter>(
    exporter: &E,
    batch: &mut Vec<FinishedSpan>,
    config: &ReporterConfig,
    stats: &ReporterStats,
) {
    if batch.is_empty() {
        return;
    }
    let count = batch.len() as u64;
    let data = batch.drain(..).map(FinishedSpan::into_span_data).collect();
    match tokio::time::timeout(config.export_timeout, exporter.export(data)).await {
        Ok(Ok(())) => stats.exported.fetch_add(count, Relaxed),
        Ok(Err(error)) => {
            tracing::debug!(%error, spans = count, "span export failed");
            stats.export_failed.fetch_add(count, Relaxed)
        }
        Err(_) => {
            tracing::debug!(spans = count, "span export timed out");
            stats.export_failed.fetch_add(count, Relaxed)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Decision, TraceContext,
        span::{FinishedSpan, SpanKind},
    };
    use opentelemetry_sdk::{error::OTelSdkResult, trace::SpanData};
    use std::{sync::Mutex, time::SystemTime};

    /// An exporter that records batch sizes, and hangs or fails on demand.
    #[derive(Clone, Debug, Default)]
    struct Scripted {
        batches: Arc<Mutex<Vec<usize>>>,
        hang: bool,
        fail: bool,
    }

    impl SpanExporter for Scripted {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.batches.lock().unwrap().push(batch.len());
            if self.hang {
                std::future::pending::<()>().await;
            }
            if self.fail {
                return Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                    "collector down".into(),
                ));
            }
            Ok(())
        }
    }

    fn span() -> FinishedSpan {
        FinishedSpan {
            context: TraceContext::root(Decision {
                sampled: true,
                forced: false,
                debug: false,
            }),
            kind: SpanKind::Client,
            name: "catalog:80/*".into(),
            start: SystemTime::now(),
            duration: Duration::from_millis(1),
            tags: vec![],
            error: false,
        }
    }

    fn config() -> ReporterConfig {
        ReporterConfig {
            queue_capacity: 8,
            batch_size: 4,
            flush_interval: Duration::from_secs(1),
            export_timeout: Duration::from_secs(5),
        }
    }

    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn full_batches_go_at_once_and_partial_ones_after_the_interval() {
        let exporter = Scripted::default();
        let reporter = SpanReporter::spawn(exporter.clone(), config());
        for _ in 0..5 {
            reporter.report(span());
        }
        settle().await;
        assert_eq!(*exporter.batches.lock().unwrap(), [4]);
        tokio::time::sleep(Duration::from_millis(1001)).await;
        settle().await;
        assert_eq!(*exporter.batches.lock().unwrap(), [4, 1]);
        assert_eq!(reporter.stats().exported.load(Relaxed), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_collector_drops_spans_at_the_queue_and_times_out_exports() {
        let exporter = Scripted {
            hang: true,
            ..Scripted::default()
        };
        let reporter = SpanReporter::spawn(exporter.clone(), config());
        // One batch of 4 is taken into the hung export; then the queue holds 8.
        for _ in 0..20 {
            reporter.report(span());
            settle().await;
        }
        let stats = reporter.stats();
        assert_eq!(stats.reported.load(Relaxed), 12);
        assert_eq!(stats.dropped.load(Relaxed), 8);
        tokio::time::sleep(Duration::from_secs(5)).await;
        settle().await;
        assert_eq!(stats.export_failed.load(Relaxed), 4, "the timed-out batch");
    }

    #[tokio::test(start_paused = true)]
    async fn failed_exports_are_counted_and_the_rest_flushed_at_the_end() {
        let exporter = Scripted {
            fail: true,
            ..Scripted::default()
        };
        let reporter = SpanReporter::spawn(exporter.clone(), config());
        let stats = reporter.stats().clone();
        for _ in 0..6 {
            reporter.report(span());
        }
        drop(reporter);
        settle().await;
        assert_eq!(*exporter.batches.lock().unwrap(), [4, 2]);
        assert_eq!(stats.export_failed.load(Relaxed), 6);
        assert_eq!(stats.exported.load(Relaxed), 0);
    }
}
