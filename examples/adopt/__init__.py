"""An existing FastAPI application that adopts silentauth (see ``app.py``)."""
