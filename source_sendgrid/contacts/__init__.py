"""The contacts export, below the streams that read it: `export_job` creates and shares the job, `download`
fetches its files and `parse` turns their bytes into contacts. The streams are in `streams/contacts_export.py`
and `streams/memberships.py`."""
