"""Drivers for the physical props, built on gpiozero devices only."""
