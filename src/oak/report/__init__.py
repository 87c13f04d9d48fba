"""`oak report`: the report in `paths.reports`, which `oak.report.build.write_report` writes."""
