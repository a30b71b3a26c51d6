"""Runtime shared by Fordring's services: small modules, no business rules."""
