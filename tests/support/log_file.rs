//! Access-log files for the end-to-end tests: a fresh path per test, the mesh config that logs
//! to it, and its lines once the background writer has written them.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

/// A fresh, empty log file path (removed on drop).
pub struct LogFile(pub PathBuf);

impl LogFile {
    pub fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("mesh-access-log-{}-{name}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        LogFile(path)
    }

    /// The first line (waited for as [`lines`](Self::lines) waits), as JSON.
    pub async fn first_json_line(&self) -> serde_json::Value {
        let lines = self.lines(1).await;
        let first = lines.first().expect("a line within 5 s");
        serde_json::from_str(first).unwrap()
    }

    /// Waits (at most 5 s) for `n` lines.
    pub async fn lines(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&self.0).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A mesh config logging to `file` in `encoding` (`TEXT`, `JSON`), as the first document of a
/// config.
pub fn logging_to(file: &LogFile, encoding: &str) -> String {
    format!(
        "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {{name: mesh}}\n\
         spec: {{accessLogFile: {}, accessLogEncoding: {encoding}}}\n---\n",
        file.0.display()
    )
}
