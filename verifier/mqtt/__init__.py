"""MQTT: device X.509 certificates (the tenant CA), broker credentials and ACLs, the broker's HTTP auth hooks, the status subscriber (docs/mqtt.md)."""
