"""Win-back journeys: definitions (YAML), the state machine, rendering, offers, the tick
that enrols and advances contacts, the outbox dispatcher and the simulator."""
