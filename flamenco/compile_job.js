// SPDX-License-Identifier: GPL-3.0-or-later
//
// Compile a Flamenco job type outside a Manager, to see (and test) the tasks it makes:
//
//     node flamenco/compile_job.js flamenco/glvd_batch.js SETTINGS.json [--var blender=blender ...]
//
// What the Manager does before calling compileJob is done the same way: the script runs with
// `author`, `path` (POSIX paths here) and `print` in scope, the JOB_TYPE defaults fill settings
// that were not given, and a required setting that is missing, or a setting the job type does not
// declare, is refused. `--var NAME=VALUE` replaces {NAME} in every command parameter, as the
// Manager's variables (e.g. {blender}, {blenderArgs}) are replaced for a worker. Prints
// {"settings": ..., "tasks": [{"name", "type", "commands": [{"name", "parameters"}],
// "dependencies": [task names]}]} as JSON; exit status 1 with the message when compiling fails.
"use strict";
const fs = require("fs");
const nodePath = require("path");
const vm = require("vm");

function fail(message) {
    process.stderr.write(`compile_job.js: ${message}\n`);
    process.exit(1);
}

const argv = process.argv.slice(2);
const vars = {};
const positional = [];
for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--var") {
        const [name, ...value] = (argv[++i] || "").split("=");
        if (!name || value.length === 0) fail(`--var takes NAME=VALUE, not ${argv[i]}`);
        vars[name] = value.join("=");
    } else {
        positional.push(argv[i]);
    }
}
if (positional.length !== 2) fail("usage: compile_job.js JOB_TYPE.js SETTINGS.json [--var NAME=VALUE ...]");
const [scriptPath, settingsPath] = positional;

const tasks = [];
function Task(name, type) {
    return {
        name, type, commands: [], dependencies: [],
        addCommand(command) { this.commands.push(command); },
        addDependency(other) { this.dependencies.push(other); },
    };
}
const author = { Task, Command: (name, parameters) => ({ name, parameters }) };
const sandbox = { author, path: nodePath.posix, print: (...a) => process.stderr.write(a.join(" ") + "\n") };
vm.createContext(sandbox);
vm.runInContext(fs.readFileSync(scriptPath, "utf8") + "\n;this.JOB_TYPE = JOB_TYPE;", sandbox, { filename: scriptPath });
if (typeof sandbox.compileJob !== "function" || !sandbox.JOB_TYPE) fail(`${scriptPath}: no JOB_TYPE or compileJob()`);

let given;
try {
    given = JSON.parse(fs.readFileSync(settingsPath, "utf8"));
} catch (e) {
    fail(`${settingsPath}: ${e.message}`);
}
const declared = new Map(sandbox.JOB_TYPE.settings.map((s) => [s.key, s]));
for (const key of Object.keys(given)) {
    if (!declared.has(key)) fail(`setting ${key} is not declared by ${sandbox.JOB_TYPE.label}`);
}
const settings = {};
for (const [key, spec] of declared) {
    const value = key in given ? given[key] : spec.default;
    if (value === undefined) {
        if (spec.required) fail(`required setting ${key} is missing`);
        continue;
    }
    if (spec.choices && !spec.choices.includes(value)) fail(`setting ${key}: ${value} is not one of ${spec.choices}`);
    settings[key] = value;
}

const job = {
    name: "preview", created: new Date(), settings,
    addTask(task) { tasks.push(task); },
};
try {
    sandbox.compileJob(job);
} catch (e) {
    fail(`compileJob: ${e}`);
}

function expand(value) {
    if (typeof value === "string") return value.replace(/{([^}]+)}/g, (m, name) => (name in vars ? vars[name] : m));
    if (Array.isArray(value)) return value.map(expand);
    return value;
}
const out = tasks.map((t) => {
    for (const dep of t.dependencies) {
        if (!tasks.includes(dep)) fail(`task ${t.name} depends on a task that was not added to the job`);
    }
    return {
        name: t.name, type: t.type,
        commands: t.commands.map((c) => ({
            name: c.name,
            parameters: Object.fromEntries(Object.entries(c.parameters).map(([k, v]) => [k, expand(v)])),
        })),
        dependencies: t.dependencies.map((d) => d.name),
    };
});
process.stdout.write(JSON.stringify({ settings, tasks: out }, null, 1) + "\n");
