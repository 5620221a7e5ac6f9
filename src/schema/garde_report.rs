//! Converts a `garde` validation report into [`Issue`]s.

use super::Issue;

/// One issue per error in `report`, with its path split into segments (`tags[3].name`
/// becomes `tags`, `3`, `name`).
pub(crate) fn report_to_issues(report: &garde::Report) -> Vec<Issue> {
    report
        .iter()
        .map(|(path, error)| {
            let path = path.to_string();
            path.split(['.', '[', ']'])
                .filter(|segment| !segment.is_empty())
                .fold(Issue::new(error.message()), Issue::at)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_segments() {
        let mut report = garde::Report::new();
        let path = garde::error::Path::new("tags").join(3usize).join("name");
        report.append(path, garde::Error::new("too long"));
        report.append(garde::error::Path::empty(), garde::Error::new("bad"));
        let issues = report_to_issues(&report);
        assert_eq!(issues[0].path, ["tags", "3", "name"]);
        assert_eq!(issues[0].message, "too long");
        assert!(issues[1].path.is_empty());
    }
}
