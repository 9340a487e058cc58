"""CSV row processing: pre-flight checks, the Distributed Map definition pieces, and the collector."""
