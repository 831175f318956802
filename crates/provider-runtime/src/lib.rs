//! What both provider managers share: command-line scoping flags, telemetry, the health and
//! metrics server, leader election, graceful shutdown, and the apply and condition helpers.
