package dev.vitedge.core

import java.io.InputStream
import java.security.MessageDigest

/** Checks an artifact's files against the manifest (size, then sha256), as `vitedge.runtime.manifest.verify_files` does. */
object ArtifactFiles {
    /** Hex sha256 of a stream, read to its end (not closed). */
    fun sha256(stream: InputStream): String {
        val digest = MessageDigest.getInstance("SHA-256")
        val buffer = ByteArray(1 shl 16)
        while (true) {
            val n = stream.read(buffer)
            if (n < 0) break
            digest.update(buffer, 0, n)
        }
        val hex = StringBuilder()
        for (b in digest.digest()) hex.append(String.format("%02x", b))
        return hex.toString()
    }

    /**
     * Verify every file the manifest lists, the self-check's too. [size] gives a file's length (null:
     * missing) and [open] its bytes; both take the path relative to the artifact folder. Throws
     * [ManifestException] naming the file and what to do.
     */
    fun verify(manifest: Manifest, size: (String) -> Long?, open: (String) -> InputStream) {
        for (entry in manifest.allFiles) {
            val what = if (entry in manifest.files) "model file" else "self-check file"
            val actual = size(entry.path)
                ?: throw ManifestException("${entry.path}: $what missing; the artifact is incomplete, copy the whole folder")
            if (actual != entry.bytes) {
                throw ManifestException("${entry.path}: size $actual bytes differs from the manifest's ${entry.bytes}; re-copy the artifact")
            }
            val sha = open(entry.path).use { sha256(it) }
            if (sha != entry.sha256) {
                throw ManifestException("${entry.path}: sha256 checksum mismatch with the manifest; the file was modified or corrupted, re-copy the artifact")
            }
        }
    }
}
