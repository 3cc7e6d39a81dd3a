package dev.vitedge.demo

import android.content.Context
import android.content.res.AssetManager
import android.net.Uri
import androidx.documentfile.provider.DocumentFile
import dev.vitedge.core.ArtifactFiles
import dev.vitedge.core.Manifest
import dev.vitedge.core.ManifestException
import java.io.File
import java.io.FileInputStream
import java.io.FileNotFoundException
import java.io.InputStream
import java.io.RandomAccessFile
import java.nio.ByteBuffer
import java.nio.channels.FileChannel

/**
 * A vitedge artifact folder (manifest.json + model.tflite), from the APK's assets
 * (`app/src/main/assets/artifact/`) or from a folder the user picked (copied to the app's files).
 * Opening it checks the manifest's schema and every file's size and sha256 (the self-check's too), like the
 * Python runtime.
 */
class Artifact private constructor(
    val name: String,
    val manifest: Manifest,
    val model: ByteBuffer,
    /** A file of the artifact by its path in the folder (the self-check reads its files through it). */
    val read: (String) -> ByteArray
) {
    companion object {
        const val ASSET_FOLDER = "artifact"
        private const val MANIFEST = "manifest.json"

        /** The picked artifact if there is one, else the bundled one, else null. */
        fun openDefault(context: Context): Artifact? {
            val picked = pickedFolder(context)
            if (File(picked, MANIFEST).isFile) return openFolder(picked)
            val bundled = context.assets.list(ASSET_FOLDER).orEmpty()
            if (MANIFEST in bundled) return openAssets(context.assets)
            return null
        }

        fun openFolder(folder: File): Artifact {
            val manifest = Manifest.parse(File(folder, MANIFEST).readText(Charsets.UTF_8), "${folder.name}/$MANIFEST")
            checkFormat(manifest)
            ArtifactFiles.verify(
                manifest,
                { path -> File(folder, path).let { if (it.isFile) it.length() else null } },
                { path -> FileInputStream(File(folder, path)) }
            )
            val model = RandomAccessFile(File(folder, manifest.modelFile), "r").use {
                it.channel.map(FileChannel.MapMode.READ_ONLY, 0, it.length())
            }
            return Artifact(folder.name, manifest, model) { path -> File(folder, path).readBytes() }
        }

        fun openAssets(assets: AssetManager): Artifact {
            val manifest = Manifest.parse(
                assets.open("$ASSET_FOLDER/$MANIFEST").use { it.readBytes().toString(Charsets.UTF_8) },
                "assets/$ASSET_FOLDER/$MANIFEST"
            )
            checkFormat(manifest)
            ArtifactFiles.verify(
                manifest,
                { path -> assetLength(assets, "$ASSET_FOLDER/$path") },
                { path -> assets.open("$ASSET_FOLDER/$path") }
            )
            // Memory-map the uncompressed asset (build.gradle.kts: noCompress "tflite").
            val model = assets.openFd("$ASSET_FOLDER/${manifest.modelFile}").use { fd ->
                FileInputStream(fd.fileDescriptor).channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
            }
            return Artifact("assets/$ASSET_FOLDER", manifest, model) { path -> assets.open("$ASSET_FOLDER/$path").use { it.readBytes() } }
        }

        /** Copy a picked folder (Storage Access Framework tree) into the app's files, then open it. */
        fun importTree(context: Context, tree: Uri): Artifact {
            val root = DocumentFile.fromTreeUri(context, tree) ?: throw ManifestException("cannot read the picked folder")
            val manifestDoc = root.findFile(MANIFEST)
                ?: throw ManifestException("${root.name}: no $MANIFEST; pick the folder that vitedge convert wrote")
            val manifestText = context.contentResolver.openInputStream(manifestDoc.uri)!!.use { it.readBytes().toString(Charsets.UTF_8) }
            val manifest = Manifest.parse(manifestText, "${root.name}/$MANIFEST")
            checkFormat(manifest)
            val staging = File(context.filesDir, "artifact.partial")
            staging.deleteRecursively()
            staging.mkdirs()
            File(staging, MANIFEST).writeText(manifestText, Charsets.UTF_8)
            for (entry in manifest.allFiles) { // the model's files and the self-check's
                val doc = find(root, entry.path) ?: throw ManifestException("${entry.path}: missing in ${root.name}; copy the whole artifact folder")
                val target = File(staging, entry.path)
                target.parentFile?.mkdirs()
                context.contentResolver.openInputStream(doc.uri)!!.use { input -> target.outputStream().use { input.copyTo(it) } }
            }
            val artifact = openFolder(staging) // verifies the checksums before anything replaces the old one
            val folder = pickedFolder(context)
            folder.deleteRecursively()
            if (!staging.renameTo(folder)) throw ManifestException("could not move the artifact into ${folder.path}")
            return openFolder(folder).also { check(it.manifest.files.size == artifact.manifest.files.size) }
        }

        private fun pickedFolder(context: Context) = File(context.filesDir, ASSET_FOLDER)

        private fun find(root: DocumentFile, path: String): DocumentFile? {
            var current: DocumentFile = root
            for (part in path.split('/')) current = current.findFile(part) ?: return null
            return current
        }

        private fun assetLength(assets: AssetManager, path: String): Long? = try {
            assets.openFd(path).use { it.length }
        } catch (missing: FileNotFoundException) {
            null
        } catch (compressed: java.io.IOException) {
            // A compressed asset has no file descriptor: count its bytes.
            assets.open(path).use { countBytes(it) }
        }

        private fun countBytes(stream: InputStream): Long {
            val buffer = ByteArray(1 shl 16)
            var total = 0L
            while (true) {
                val n = stream.read(buffer)
                if (n < 0) return total
                total += n
            }
        }

        private fun checkFormat(manifest: Manifest) {
            if (manifest.format != "tflite") {
                throw ManifestException(
                    "this is a ${manifest.format} artifact; the Android demo runs TFLite ones: vitedge convert MODEL --to tflite --out DIR"
                )
            }
        }
    }
}
