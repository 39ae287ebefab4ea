"""Payment history: the agency's payments, filtered, one payment's page, the CSV and XLSX export."""
