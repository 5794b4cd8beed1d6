// SPDX-License-Identifier: GPL-3.0-or-later
//
// Flamenco job type "GLVD Batch Faces": a folder of photos reconstructed on the farm's workers,
// in N chunk tasks (each `blender -b --python scripts/batch.py -- ... --chunk K/N`) and one merge
// task that joins the chunks' reports into OUTPUT/report.json. Install it by copying this file
// into the `scripts/` folder beside the flamenco-manager executable and restarting the Manager
// (docs/FARMS.md). The input and output folders and the GLVD checkout must be reachable from
// every worker at the paths given (the farm's shared storage; Flamenco's two-way variables such
// as {jobs} work here too), and each worker's Blender needs the GLVD extension installed.

const JOB_TYPE = {
    label: "GLVD Batch Faces",
    description: "Reconstruct a 3D face mesh from every photo of a folder (GLVD), split into chunks",
    settings: [
        { key: "input_dir", type: "string", subtype: "dir_path", required: true,
          description: "Folder of photos (or, with views per subject > 1, of one folder per subject)" },
        { key: "output_dir", type: "string", subtype: "dir_path", required: true,
          description: "Where the .blend files, exports and report.json are written" },
        { key: "chunks", type: "int32", default: 8, propargs: { min: 1, max: 10000 }, required: true,
          description: "Number of tasks the photos are split into (about one per worker, or more for shorter tasks)" },
        { key: "glvd_checkout", type: "string", subtype: "dir_path", required: true,
          description: "The GLVD checkout on the workers (it holds scripts/batch.py)" },
        { key: "formats", type: "string", default: "blend,obj,glb", required: true,
          description: "Comma-separated outputs per photo: blend, glb, gltf, fbx, obj" },
        { key: "device", type: "string", default: "auto", choices: ["auto", "cpu", "cuda"], required: true,
          description: "auto: CUDA where the worker's Blender has PyTorch with CUDA; cpu: the numpy runtime" },
        { key: "views_per_subject", type: "int32", default: 1, propargs: { min: 1, max: 32 },
          description: "Photos per subject (each subfolder of the input one subject) for multi-view reconstructions" },
        { key: "texture", type: "int32", default: 2048, choices: [0, 1024, 2048, 4096],
          description: "Photo texture size (0: none)" },
        { key: "fit", type: "bool", default: false,
          description: "Fit each face to its photos after the descent (docs/RESULTS.md)" },
        { key: "extra_args", type: "string", default: "",
          description: "More batch.py options, separated by spaces (no quoting), e.g. --neutral --no-arkit" },
    ],
};

// Flamenco's "blender-render" command runs `exe argsBefore blendfile args` and refuses an empty
// blendfile. A batch opens no file, so that slot holds -noaudio (no sound device: what a farm
// worker wants anyway). Not --factory-startup: it starts Blender with the extension disabled,
// and Blender then removes the extension's OpenCV and Pillow wheels from the worker's profile.
// argsBefore has its own -b: the tasks must run in the background whatever the Manager's
// {blenderArgs} variable says (a second -b does nothing).
const NO_BLENDFILE = "-noaudio";

function compileJob(job) {
    const settings = job.settings;
    const chunks = settings.chunks;
    if (!Number.isInteger(chunks) || chunks < 1) {
        throw `chunks must be a whole number of at least 1, not ${chunks}`;
    }
    for (const key of ["input_dir", "output_dir", "glvd_checkout"]) {
        if (!settings[key]) {
            throw `the ${key} setting is empty`;
        }
    }
    const scripts = path.join(settings.glvd_checkout, "scripts");
    const chunkTasks = [];
    for (let k = 1; k <= chunks; k++) {
        const task = author.Task(`glvd-chunk-${k}-of-${chunks}`, "blender");
        task.addCommand(blenderPython(path.join(scripts, "batch.py"), batchArgs(settings, `${k}/${chunks}`)));
        chunkTasks.push(task);
        job.addTask(task);
    }
    const merge = author.Task("glvd-merge-reports", "blender");
    merge.addCommand(blenderPython(path.join(scripts, "batch_merge.py"),
                                   ["--output", settings.output_dir, "--chunks", String(chunks)]));
    for (const task of chunkTasks) {
        merge.addDependency(task);
    }
    job.addTask(merge);
}

// One chunk's batch.py options. --skip-existing: a task the Manager runs again (a lost worker)
// resumes instead of redoing its photos; --bad-inputs-ok: a bad photo is reported in the chunk's
// report and does not fail the task (running it again would not mend the photo); the merge task
// fails when any photo did, so the job ends failed with the merged report naming them.
function batchArgs(settings, chunk) {
    const args = [
        "--input", settings.input_dir,
        "--output", settings.output_dir,
        "--formats", settings.formats,
        "--device", settings.device,
        "--chunk", chunk,
        "--skip-existing",
        "--bad-inputs-ok",
    ];
    if (settings.views_per_subject && settings.views_per_subject > 1) {
        args.push("--views-per-subject", String(settings.views_per_subject));
    }
    if (settings.texture !== undefined && settings.texture !== null) {
        args.push("--texture", String(settings.texture));
    }
    if (settings.fit) {
        args.push("--fit");
    }
    const extra = (settings.extra_args || "").trim();
    if (extra) {
        for (const word of extra.split(/\s+/)) {
            args.push(word);
        }
    }
    return args;
}

function blenderPython(script, scriptArgs) {
    return author.Command("blender-render", {
        exe: "{blender}",
        exeArgs: "{blenderArgs}",
        argsBefore: ["-b"],
        blendfile: NO_BLENDFILE,
        args: ["--python-exit-code", "1", "--python", script, "--"].concat(scriptArgs),
    });
}
