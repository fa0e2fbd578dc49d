"""squall's simulated world and everything both runners share."""
