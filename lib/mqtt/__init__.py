# Tether's MQTT 3.1.1 client: codec.py (sans-I/O packets), session.py (an
# asyncio session over any byte stream), transport.py (TCP and TLS streams).
