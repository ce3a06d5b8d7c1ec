"""The custom metrics adapter: scrape targets, naming, rates and aggregation."""
