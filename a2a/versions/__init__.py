"""A2A protocol versions: the `A2A-Version` rule and translation between 1.0 and the two 0.3 wires.

The hub thinks in 1.0 JSON; everything 0.3 is translated at the edge, in one place:

- `common`: the version rule, 1.0 method names, states, what is the same in both 0.3 wires
  (0.3 push configs, state names) and the task walker both use;
- `jsonrpc03`: the 0.3 JSON-RPC wire (`kind`-tagged objects, lower-case states, `file`/`data`
  part wrappers): `*_from_rpc03` lifts to 1.0, `*_to_rpc03` lowers;
- `rest03`: the 0.3 HTTP+JSON wire, the 0.3 proto's JSON (`content` parts,
  `TASK_STATE_CANCELLED`, proto field names): `*_from_rest03` / `*_to_rest03`;
- `cards`: agent cards of either version in the 1.0 shape, and 1.0 cards with their 0.3 fields.

Working on dicts (not models) keeps fields this code does not know about.
"""
