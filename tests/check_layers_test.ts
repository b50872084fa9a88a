import assert from "node:assert/strict";
import {
  importCycles,
  layerViolations,
  wingOf,
} from "../tools/check_layers.ts";

Deno.test({
  name: "wingOf() puts an entry file and its folder in one wing",
  permissions: "none",
  fn() {
    assert.equal(wingOf("server.ts"), "server");
    assert.equal(wingOf("server/uploads.ts"), "server");
    assert.equal(wingOf("engine/parity/galois.ts"), "engine");
  },
});

Deno.test({
  name: "layerViolations() allows downward and in-wing imports only",
  permissions: "none",
  async fn(t) {
    await t.step("down the layers and inside a wing pass", () => {
      assert.deepEqual(
        layerViolations([
          { from: "mod.ts", to: "cli/main.ts" },
          { from: "server.ts", to: "server/session.ts" },
          { from: "server/session.ts", to: "engine/receiver.ts" },
          { from: "engine/receiver.ts", to: "base/errors.ts" },
          { from: "tests/x_test.ts", to: "tools/bench/main.ts" },
        ]),
        [],
      );
    });
    await t.step("an upward import is named with both layers", () => {
      const [problem, ...rest] = layerViolations([
        { from: "engine/sender.ts", to: "faults/simulator.ts" },
      ]);
      assert.equal(rest.length, 0);
      assert.match(
        problem!,
        /engine \(layer 5\) may not import faults \(layer 4\)/,
      );
    });
    await t.step("a sideways import between wings of one layer fails", () => {
      assert.equal(
        layerViolations([{ from: "server/x.ts", to: "client/y.ts" }]).length,
        1,
      );
    });
    await t.step("a file in no layer is reported", () => {
      assert.match(
        layerViolations([{ from: "mod.ts", to: "stray.ts" }])[0]!,
        /stray is in no layer/,
      );
    });
  },
});

Deno.test({
  name: "importCycles() finds circles, and only circles",
  permissions: "none",
  fn() {
    assert.deepEqual(
      importCycles([
        { from: "a.ts", to: "b.ts" },
        { from: "b.ts", to: "c.ts" },
        { from: "c.ts", to: "a.ts" },
        { from: "c.ts", to: "d.ts" },
        { from: "e.ts", to: "e.ts" },
      ]),
      [["a.ts", "b.ts", "c.ts"], ["e.ts"]],
    );
    assert.deepEqual(importCycles([{ from: "a.ts", to: "b.ts" }]), []);
  },
});
