//! Repository lines for the citation panel, the provenance view and report export.

use super::*;

impl Desktop {
    /// Lines of a repository file for the citation panel (1-based, inclusive).
    pub fn read_lines(&self, path: &str, start: usize, end: usize) -> Result<Lines> {
        let ws = self.workspace()?;
        let abs = checked_abs(&ws, path)?;
        let rel = ws.rel_path(&abs.display().to_string());
        let text = files::read_text(&abs, &rel)?;
        Ok(files::lines_of(&rel, &text, start, end))
    }

    // ---- provenance ------------------------------------------------------------

    pub async fn provenance(&self, range: Option<String>) -> Result<ProvenanceView> {
        let ws = self.workspace()?;
        let ledger_error = ws.status().ledger.error;
        let prov = ws.provenance();
        tokio::task::spawn_blocking(move || {
            let (report, report_error) = match prov.report_data(range.as_deref()) {
                Ok(r) => (Some(r), None),
                Err(e) => (None, Some(report_error(&e))),
            };
            let mut ledger = prov.ledger_summary(50);
            if ledger_error.is_some() {
                ledger.error = ledger_error;
            }
            ProvenanceView {
                report,
                report_error,
                ledger,
            }
        })
        .await
        .map_err(|e| DesktopError::new(ErrorKind::Report, e.to_string(), "Try again"))
    }

    /// Writes a report (`json`, `csv`, `html`, `sarif` or `intoto`) to `dest`, or to the
    /// Downloads folder.
    pub async fn export_report(
        &self,
        format: &str,
        range: Option<String>,
        dest: Option<String>,
    ) -> Result<ExportView> {
        let ws = self.workspace()?;
        let fmt = format.parse::<ReportFormat>().map_err(|e| {
            DesktopError::new(
                ErrorKind::Input,
                e.to_string(),
                "Choose one of the export buttons",
            )
        })?;
        let ext = fmt.file_extension();
        let root = ws.root().to_path_buf();
        let prov = ws.provenance();
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "repository".into());
        let dest = match dest.filter(|d| !d.trim().is_empty()) {
            Some(d) => PathBuf::from(d.trim()),
            None => directories::UserDirs::new()
                .and_then(|u| u.download_dir().map(Path::to_path_buf))
                .or_else(|| directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf()))
                .unwrap_or_else(std::env::temp_dir)
                .join(format!("cairn-report-{name}.{ext}")),
        };
        let text = tokio::task::spawn_blocking(move || prov.report(range.as_deref(), fmt))
            .await
            .map_err(|e| DesktopError::new(ErrorKind::Report, e.to_string(), "Try again"))?
            .map_err(|e| report_error(&e))?;
        files::write_atomic(&dest, &text)?;
        Ok(ExportView {
            path: dest.display().to_string(),
            bytes: text.len(),
            format: format.to_string(),
        })
    }
}
