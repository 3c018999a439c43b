extends Node
## One player's node. The server's MultiplayerSpawner spawns one per connected peer (named after
## the peer id); the server keeps authority and changes `counter` every frame, and the child
## MultiplayerSynchronizer replicates `counter` (every interval, unreliable) and `label` (on
## change, reliable) to every client.

## Changed by the server every frame; clients see it move through the synchronizer.
var counter := 0
## The player's name, set by the server when the peer registers.
var label := ""
