"""What people read: text tables, the incident timeline, HTML and JUnit reports."""
