#!/usr/bin/env python3
"""Stands in for systemd's NOTIFY_SOCKET in the integration tests: binds a unix datagram socket
at PATH and appends every notification it receives to OUT, one line each (the newlines between
a notification's assignments become " | "), until it is killed.
Usage: notify_listener.py PATH OUT"""
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
with open(out, "a", buffering=1, encoding="utf-8") as f:
    while True:
        data = sock.recv(65536)
        f.write(data.decode("utf-8", "replace").replace("\n", " | ") + "\n")
