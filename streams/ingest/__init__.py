"""Live ingestion: WordPress webhooks and our own JSON events over HTTP (http.py), and a poller for
the WordPress REST API (poller.py). Both map WordPress comment rows to contract events
(wordpress.py) and publish them through streams.publisher with delivery confirmed (delivery.py)."""
