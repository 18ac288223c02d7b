// Validates ServiceMonitors (a JSON list on standard input) against the
// prometheus-operator's monitoring.coreos.com/v1 API as the npm package
// @kubernetes-models/prometheus-operator describes it (generated from the
// operator's Go API types, the source of its CRD schema). Run by
// scripts/k8s-validate.sh:
//
//   node servicemonitor.mjs NODE_ENV_DIR < monitors.json
//
// Two checks, as the package offers no single strict one:
// - its JSON schema validator: types, required fields, patterns (durations)
//   and enums, but it lets unknown fields through;
// - TypeScript, with each object written as a literal of the package's
//   IServiceMonitor type: a field the API does not have, at any depth, is an
//   excess property and an error.
// Prints one line per problem and exits 1 if there is any.
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const nodeEnv = process.argv[2];
const modelDir = join(nodeEnv, "node_modules/@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1");
const { ServiceMonitor } = await import(pathToFileURL(join(modelDir, "ServiceMonitor.js")).href);
const monitors = JSON.parse(readFileSync(0, "utf8"));
const problems = [];

for (const object of monitors) {
  try {
    new ServiceMonitor(object).validate();
  } catch (error) {
    problems.push(`ServiceMonitor/${object.metadata?.name}: ${error.message}`);
  }
}

// Line i + 2 of the generated file holds monitor i. It sits in NODE_ENV_DIR
// so the package resolves; the process id keeps parallel runs apart.
const typed = join(nodeEnv, `servicemonitors-${process.pid}.mts`);
const lines = [`import type { IServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";`];
monitors.forEach((object, index) => lines.push(`export const monitor${index}: IServiceMonitor = ${JSON.stringify(object)};`));
writeFileSync(typed, lines.join("\n") + "\n");
try {
  const tsc = join(nodeEnv, "node_modules/typescript/bin/tsc");
  execFileSync(process.execPath, [tsc, "--noEmit", "--strict", "--skipLibCheck", "--module", "nodenext", "--moduleResolution", "nodenext", typed], {
    encoding: "utf8",
  });
} catch (error) {
  for (const line of (error.stdout ?? String(error)).split("\n").filter((line) => line.trim())) {
    const at = /\.mts\((\d+),\d+\): (?:error \w+: )?(.*)/.exec(line);
    const object = at ? monitors[Number(at[1]) - 2] : undefined;
    problems.push(object ? `ServiceMonitor/${object.metadata?.name}: ${at[2]}` : line);
  }
} finally {
  rmSync(typed, { force: true });
}

for (const problem of problems) console.log(problem);
process.exit(problems.length === 0 ? 0 : 1);
