"""`slabot demo`: a simulated day of the agreement on a console transport, with the desk open."""
