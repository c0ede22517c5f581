# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_fscryptfs_global_optspecs
    string join \n h/help V/version
end

function __fish_fscryptfs_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_fscryptfs_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_fscryptfs_using_subcommand
    set -l cmd (__fish_fscryptfs_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -s V -l version -d 'Print version'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "crypt" -d 'Encrypt or decrypt raw fscrypt data (fstests\' fscrypt-crypt-util interface)'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "init" -d 'Create an fscryptfs volume in an empty or new backing directory'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "mount" -d 'Mount an fscryptfs volume (FUSE)'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "setup" -d 'Write the configuration, or set up a filesystem\'s .fscrypt metadata directory'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "encrypt" -d 'Encrypt an empty directory with a new policy, protected by a passphrase or key'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "unlock" -d 'Unlock an encrypted directory with one of its protectors'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "lock" -d 'Lock an encrypted directory (remove its key)'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "status" -d 'Show encrypted filesystems, a filesystem\'s metadata, or a directory\'s status'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "metadata" -d 'Manage protectors and policies'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "pam" -d 'Unlock login-protected directories at login, lock them at logout (run by pam_exec)'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "generate-docs" -d 'Write the man pages and completions into a directory (for packaging)'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "inspect" -d 'Print a volume\'s stored bytes offline, without keys (ciphertext names, symlink targets, data units, contexts)'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "fsck" -d 'Check a volume\'s backing store offline (no keys needed)'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "add-key" -d 'Add a raw key (read from stdin) to a filesystem; print its identifier'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "add_key" -d 'Add a raw key (read from stdin) to a filesystem; print its identifier'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "remove-key" -d 'Remove a key (or this user\'s claim to it) from a filesystem'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "remove_key" -d 'Remove a key (or this user\'s claim to it) from a filesystem'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "key-status" -d 'Print the status of a key on a filesystem'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "key_status" -d 'Print the status of a key on a filesystem'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "set-policy" -d 'Set an encryption policy on an empty directory'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "set_policy" -d 'Set an encryption policy on an empty directory'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "get-policy" -d 'Print the encryption policy of a file or directory'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "get_policy" -d 'Print the encryption policy of a file or directory'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "get-nonce" -d 'Print the 16-byte nonce of an encrypted file or directory in hex'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "get_nonce" -d 'Print the 16-byte nonce of an encrypted file or directory in hex'
complete -c fscryptfs -n "__fish_fscryptfs_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand crypt" -l data-unit-size -d 'Data unit size in bytes (a power of two; names use 255 with --padding)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand crypt" -l data-unit-index -d 'Index of the first data unit' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand crypt" -l padding -d 'Pad a short final unit to a multiple of P (at least 16 bytes) instead of the whole unit' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand crypt" -l kdf -d 'Key derivation: none (the master key is the key), AES-128-ECB (v1), HKDF-SHA512 (v2)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand crypt" -l mode-num -d 'Mode number used in the HKDF info of DIRECT_KEY and IV_INO_LBLK keys (default: CIPHER\'s)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand crypt" -l file-nonce -d 'The file\'s 16-byte nonce, 32 hex digits' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand crypt" -l inode-number -d 'The inode number (IV_INO_LBLK_64 and IV_INO_LBLK_32)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand crypt" -l fs-uuid -d 'The filesystem UUID, 32 hex digits (IV_INO_LBLK keys)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand crypt" -l extent-nonce -d 'Per-extent key (HKDF context 9) from this 16-byte extent nonce, 32 hex digits; the data-unit index then counts from the extent\'s start' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand crypt" -l decrypt -d 'Decrypt instead of encrypt'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand crypt" -l dump-key-identifier -d 'Print the v2 key identifier of MASTER_KEY_HEX instead of encrypting'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand crypt" -l direct-key -d 'DIRECT_KEY: a per-mode key, the nonce in the IV'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand crypt" -l iv-ino-lblk-64 -d 'IV_INO_LBLK_64 IVs and key'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand crypt" -l iv-ino-lblk-32 -d 'IV_INO_LBLK_32 IVs and key'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand crypt" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand init" -l removal -d 'What key removal does to open files: `soft` (the kernel\'s behaviour) or `deny-writes`' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand init" -l contents-layout -d 'How regular files store contents: `per-file` (per-file keys, ciphertext in place, as ext4) or `extent` (per-extent keys, copy-on-write extents, as btrfs; v2 policies without the DIRECT_KEY / IV_INO_LBLK flags only)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand init" -l name -d 'With --encrypt: the protector\'s name' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand init" -l key -d 'Read the raw key of a raw_key protector from FILE (exactly 32 bytes)' -r -F
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand init" -l passphrase-file -d 'Read the passphrase from FILE (one trailing newline is dropped)' -r -F
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand init" -l extpass -d 'Run PROGRAM (split at spaces, no shell) and use its output as the passphrase' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand init" -l encrypt -d 'Encrypt the whole volume, its top level included, under a new passphrase protector (or a raw key with --key); `mount` then asks for the passphrase'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand init" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand mount" -s o -d 'Mount options: allow_other, default_permissions, ro, removal=soft|deny-writes, debug, commit=N (seconds unsynced writes may wait for their commit: per-extent buffers and logs, per-file sizes recorded at close; default 5, 0: no timer, per-file close commits), read_ahead_kb=N (the mount\'s read-ahead in KiB, set when the daemon runs as root; default 1024, 4096 on a network or FUSE backing filesystem; 0: the kernel\'s 128), no_writeback_cache, no_io_uring (requests over /dev/fuse even where the kernel offers FUSE over io_uring, Linux 6.14+ with the fuse module\'s enable_uring=1, which is used then by default), maxkeys=N and maxbytes=N (the per-user key quota; default: the kernel\'s /proc/sys/kernel/keys/maxkeys and maxbytes), log=PATH (where the detached daemon logs, created 0600; without it, the system log via /dev/log; -f logs to stderr), nonempty (mount over a directory that has entries), test_dummy_encryption[=v2] (testing only: new inodes in unencrypted directories are encrypted with fstests\' public test key), nodev, nosuid, noexec, noatime. The options of fstab and mount(8) that mean nothing here (defaults, auto, noauto, nofail, _netdev, user, users, x-*, ...) are accepted and ignored; as mount(8)\'s helper (mount -t fuse.fscryptfs, an fstab line) the binary runs as mount.fuse.fscryptfs' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand mount" -s f -d 'Stay in the foreground'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand mount" -l ready-stdout -d 'Internal: tell the parent on stdout when the mount is live'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand mount" -l detach -d 'Internal: log to `-o log=` (or syslog) and detach stdio once the mount is live'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand mount" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand setup" -l time -d 'Target time of one passphrase hash, e.g. 1s, 500ms (the calibration of Argon2id)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand setup" -l force -d 'Replace an existing configuration without asking'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand setup" -l all-users -d 'Let every user create metadata on the filesystem (subdirectories 1777)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand setup" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand encrypt" -l policy -d 'Protect the directory with this existing policy (MOUNTPOINT:ID)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand encrypt" -l protector -d 'Protect the new policy with this existing protector (MOUNTPOINT:ID)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand encrypt" -l unlock-with -d 'With --policy: the protector of that policy to unlock it with' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand encrypt" -l source -d 'The kind of a new protector: custom_passphrase, raw_key or pam_passphrase (login)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand encrypt" -l name -d 'The name of a new protector' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand encrypt" -l key -d 'Read the raw key of a raw_key protector from FILE (exactly 32 bytes)' -r -F
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand encrypt" -l passphrase-file -d 'Read the passphrase from FILE (one trailing newline is dropped)' -r -F
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand encrypt" -l extpass -d 'Run PROGRAM (split at spaces, no shell) and use its output as the passphrase' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand encrypt" -l skip-unlock -d 'Encrypt the directory but leave it locked'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand encrypt" -l no-recovery -d 'Make no recovery passphrase for a login protector on another filesystem'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand encrypt" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand unlock" -l unlock-with -d 'The protector to unlock with (MOUNTPOINT:ID); asked for when the policy has several' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand unlock" -l key -d 'Read the raw key of a raw_key protector from FILE (exactly 32 bytes)' -r -F
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand unlock" -l passphrase-file -d 'Read the passphrase from FILE (one trailing newline is dropped)' -r -F
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand unlock" -l extpass -d 'Run PROGRAM (split at spaces, no shell) and use its output as the passphrase' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand unlock" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand lock" -l all-users -d 'Remove every user\'s claim to the key (root)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand lock" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand status" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and not __fish_seen_subcommand_from create destroy change-passphrase add-protector-to-policy remove-protector-from-policy dump help" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and not __fish_seen_subcommand_from create destroy change-passphrase add-protector-to-policy remove-protector-from-policy dump help" -f -a "create" -d 'Create a protector or a policy'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and not __fish_seen_subcommand_from create destroy change-passphrase add-protector-to-policy remove-protector-from-policy dump help" -f -a "destroy" -d 'Delete a protector, a policy, or all metadata of a filesystem'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and not __fish_seen_subcommand_from create destroy change-passphrase add-protector-to-policy remove-protector-from-policy dump help" -f -a "change-passphrase" -d 'Change the passphrase of a passphrase protector'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and not __fish_seen_subcommand_from create destroy change-passphrase add-protector-to-policy remove-protector-from-policy dump help" -f -a "add-protector-to-policy" -d 'Let a protector unlock a policy (adds a wrapped copy of the policy key)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and not __fish_seen_subcommand_from create destroy change-passphrase add-protector-to-policy remove-protector-from-policy dump help" -f -a "remove-protector-from-policy" -d 'Stop a protector from unlocking a policy'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and not __fish_seen_subcommand_from create destroy change-passphrase add-protector-to-policy remove-protector-from-policy dump help" -f -a "dump" -d 'Print a protector or policy record'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and not __fish_seen_subcommand_from create destroy change-passphrase add-protector-to-policy remove-protector-from-policy dump help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from create" -f -a "protector" -d 'Create a protector on a filesystem'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from create" -f -a "policy" -d 'Create a policy on a filesystem, protected by an existing protector'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from create" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from destroy" -l protector -d 'Delete this protector (MOUNTPOINT:ID)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from destroy" -l policy -d 'Delete this policy (MOUNTPOINT:ID)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from destroy" -l force -d 'Do not ask for confirmation'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from destroy" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from change-passphrase" -l protector -d 'The protector (MOUNTPOINT:ID)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from change-passphrase" -l old-passphrase-file -d 'The old passphrase, from FILE' -r -F
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from change-passphrase" -l new-passphrase-file -d 'The new passphrase, from FILE' -r -F
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from change-passphrase" -l old-extpass -d 'The old passphrase, from PROGRAM\'s output' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from change-passphrase" -l new-extpass -d 'The new passphrase, from PROGRAM\'s output' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from change-passphrase" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from add-protector-to-policy" -l protector -d 'The protector to add (MOUNTPOINT:ID)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from add-protector-to-policy" -l policy -d 'The policy (MOUNTPOINT:ID)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from add-protector-to-policy" -l unlock-with -d 'The policy\'s existing protector to unlock it with (MOUNTPOINT:ID)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from add-protector-to-policy" -l key -d 'Read the raw key of a raw_key protector from FILE (exactly 32 bytes)' -r -F
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from add-protector-to-policy" -l passphrase-file -d 'Read the passphrase from FILE (one trailing newline is dropped)' -r -F
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from add-protector-to-policy" -l extpass -d 'Run PROGRAM (split at spaces, no shell) and use its output as the passphrase' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from add-protector-to-policy" -l unlock-key -d 'The raw key of the --unlock-with protector' -r -F
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from add-protector-to-policy" -l unlock-passphrase-file -d 'The passphrase of the --unlock-with protector, from FILE' -r -F
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from add-protector-to-policy" -l unlock-extpass -d 'The passphrase of the --unlock-with protector, from PROGRAM\'s output' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from add-protector-to-policy" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from remove-protector-from-policy" -l protector -d 'The protector (MOUNTPOINT:ID)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from remove-protector-from-policy" -l policy -d 'The policy (MOUNTPOINT:ID)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from remove-protector-from-policy" -l force -d 'Do not ask for confirmation'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from remove-protector-from-policy" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from dump" -l protector -d 'The protector (MOUNTPOINT:ID)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from dump" -l policy -d 'The policy (MOUNTPOINT:ID)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from dump" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a protector or a policy'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from help" -f -a "destroy" -d 'Delete a protector, a policy, or all metadata of a filesystem'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from help" -f -a "change-passphrase" -d 'Change the passphrase of a passphrase protector'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from help" -f -a "add-protector-to-policy" -d 'Let a protector unlock a policy (adds a wrapped copy of the policy key)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from help" -f -a "remove-protector-from-policy" -d 'Stop a protector from unlocking a policy'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from help" -f -a "dump" -d 'Print a protector or policy record'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand metadata; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand pam" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand completions" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand generate-docs" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and not __fish_seen_subcommand_from volume inode ls name data extents extent-data symlink help" -l force -d 'Read the volume even while it is mounted read-write (what is on disk may lag behind)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and not __fish_seen_subcommand_from volume inode ls name data extents extent-data symlink help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and not __fish_seen_subcommand_from volume inode ls name data extents extent-data symlink help" -a "volume" -d 'The volume config: format, UUID, layout, removal mode, next inode number'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and not __fish_seen_subcommand_from volume inode ls name data extents extent-data symlink help" -a "inode" -d 'An inode: kind, stable number, size, context fields and the `crypt` options for its key'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and not __fish_seen_subcommand_from volume inode ls name data extents extent-data symlink help" -a "ls" -d 'A directory\'s entries: `INO KIND NAME` per line (NAME as in PATHs, bytes escaped)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and not __fish_seen_subcommand_from volume inode ls name data extents extent-data symlink help" -a "name" -d 'The ciphertext of entry ENTRY\'s name in directory DIR (the user\'s name in unencrypted ones)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and not __fish_seen_subcommand_from volume inode ls name data extents extent-data symlink help" -a "data" -d 'A regular file\'s stored data units in logical order. Hex: one line `INDEX HEX` per unit; --raw: the units back to back. Holes are printed as all-zero units unless --skip-holes'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and not __fish_seen_subcommand_from volume inode ls name data extents extent-data symlink help" -a "extents" -d 'A per-extent file\'s live mappings in logical order, one line each: `INDEX LOGICAL LENGTH CIPHER KEY-IDENTIFIER NONCE FIRST-UNIT BACKING-OFFSET` (the extent context\'s mode as a `crypt` CIPHER, its master key identifier and nonce in hex; FIRST-UNIT is the IV index of the mapping\'s first unit: `crypt --data-unit-index`)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and not __fish_seen_subcommand_from volume inode ls name data extents extent-data symlink help" -a "extent-data" -d 'The ciphertext of one mapping of a per-extent file (`extents` INDEX): its whole data units from BACKING-OFFSET. Decrypt with `fscryptfs crypt --decrypt --kdf=HKDF-SHA512 --extent-nonce=NONCE --data-unit-index=FIRST-UNIT [--data-unit-size=DU] CIPHER KEY`'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and not __fish_seen_subcommand_from volume inode ls name data extents extent-data symlink help" -a "symlink" -d 'A symlink\'s stored target: the ciphertext of its fscrypt_symlink_data (the plaintext target when unencrypted)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and not __fish_seen_subcommand_from volume inode ls name data extents extent-data symlink help" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from volume" -l force -d 'Read the volume even while it is mounted read-write (what is on disk may lag behind)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from volume" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from inode" -l ino -d 'The stable inode number instead of a path' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from inode" -l force -d 'Read the volume even while it is mounted read-write (what is on disk may lag behind)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from inode" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from ls" -l ino -d 'The stable inode number instead of a path' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from ls" -l force -d 'Read the volume even while it is mounted read-write (what is on disk may lag behind)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from name" -l raw -d 'Binary output instead of hex'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from name" -l force -d 'Read the volume even while it is mounted read-write (what is on disk may lag behind)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from name" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from data" -l ino -d 'The stable inode number instead of a path' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from data" -l raw -d 'Binary output (unit i at offset i * data-unit size unless --skip-holes)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from data" -l skip-holes -d 'Leave out hole units (all-zero backing units, which read as zeros)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from data" -l force -d 'Read the volume even while it is mounted read-write (what is on disk may lag behind)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from data" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from extents" -l ino -d 'The stable inode number instead of a path' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from extents" -l force -d 'Read the volume even while it is mounted read-write (what is on disk may lag behind)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from extents" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from extent-data" -l ino -d 'The stable inode number instead of a path' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from extent-data" -l index -d 'The mapping\'s INDEX in `extents`' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from extent-data" -l raw -d 'Binary output instead of hex'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from extent-data" -l force -d 'Read the volume even while it is mounted read-write (what is on disk may lag behind)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from extent-data" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from symlink" -l ino -d 'The stable inode number instead of a path' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from symlink" -l raw -d 'Binary output instead of hex'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from symlink" -l with-length -d 'The whole fscrypt_symlink_data (le16 length, then the ciphertext)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from symlink" -l force -d 'Read the volume even while it is mounted read-write (what is on disk may lag behind)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from symlink" -s h -l help -d 'Print help'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from help" -f -a "volume" -d 'The volume config: format, UUID, layout, removal mode, next inode number'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from help" -f -a "inode" -d 'An inode: kind, stable number, size, context fields and the `crypt` options for its key'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from help" -f -a "ls" -d 'A directory\'s entries: `INO KIND NAME` per line (NAME as in PATHs, bytes escaped)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from help" -f -a "name" -d 'The ciphertext of entry ENTRY\'s name in directory DIR (the user\'s name in unencrypted ones)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from help" -f -a "data" -d 'A regular file\'s stored data units in logical order. Hex: one line `INDEX HEX` per unit; --raw: the units back to back. Holes are printed as all-zero units unless --skip-holes'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from help" -f -a "extents" -d 'A per-extent file\'s live mappings in logical order, one line each: `INDEX LOGICAL LENGTH CIPHER KEY-IDENTIFIER NONCE FIRST-UNIT BACKING-OFFSET` (the extent context\'s mode as a `crypt` CIPHER, its master key identifier and nonce in hex; FIRST-UNIT is the IV index of the mapping\'s first unit: `crypt --data-unit-index`)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from help" -f -a "extent-data" -d 'The ciphertext of one mapping of a per-extent file (`extents` INDEX): its whole data units from BACKING-OFFSET. Decrypt with `fscryptfs crypt --decrypt --kdf=HKDF-SHA512 --extent-nonce=NONCE --data-unit-index=FIRST-UNIT [--data-unit-size=DU] CIPHER KEY`'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from help" -f -a "symlink" -d 'A symlink\'s stored target: the ciphertext of its fscrypt_symlink_data (the plaintext target when unencrypted)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand inspect; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand fsck" -s q -l quiet -d 'Print only problems and notes, no summary line'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand fsck" -l force -d 'Check even while the volume is mounted read-write (what is on disk may lag behind, and the check may report what a running daemon is changing)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand fsck" -l repair -d 'Repair what can be repaired without guessing (orphaned side files and special-file records, a next-ino behind the inode numbers in use, leftover temporary files, files of interrupted creates, torn per-extent log tails); report the rest. Exit 4 when everything found was repaired'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand fsck" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand add-key" -l descriptor -d 'Add a v1 key under this 8-byte descriptor (16 hex digits) instead of a v2 key' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand add-key" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand add_key" -l descriptor -d 'Add a v1 key under this 8-byte descriptor (16 hex digits) instead of a v2 key' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand add_key" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand remove-key" -l all-users -d 'Remove every user\'s claim to the key (requires root)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand remove-key" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand remove_key" -l all-users -d 'Remove every user\'s claim to the key (requires root)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand remove_key" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand key-status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand key_status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand set-policy" -l contents -d 'Contents encryption mode (AES-256-XTS, AES-128-CBC, SM4-XTS, Adiantum)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand set-policy" -l filenames -d 'Filenames encryption mode (AES-256-CTS, AES-128-CTS, SM4-CTS, Adiantum, AES-256-HCTR2)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand set-policy" -l padding -d 'Bytes of zero padding for filenames' -r -f -a "4\t''
8\t''
16\t''
32\t''"
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand set-policy" -l data-unit-size -d 'Data unit size in bytes, a power of two (default: the filesystem block size; v2 only)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand set-policy" -l direct-key -d 'DIRECT_KEY flag (optimizes for Adiantum)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand set-policy" -l iv-ino-lblk-64 -d 'IV_INO_LBLK_64 flag (for UFS inline crypto hardware)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand set-policy" -l iv-ino-lblk-32 -d 'IV_INO_LBLK_32 flag (for eMMC inline crypto hardware; not recommended)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand set-policy" -l v1 -d 'Make a v1 policy (implied by a 16-hex-digit ID)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand set-policy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand set_policy" -l contents -d 'Contents encryption mode (AES-256-XTS, AES-128-CBC, SM4-XTS, Adiantum)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand set_policy" -l filenames -d 'Filenames encryption mode (AES-256-CTS, AES-128-CTS, SM4-CTS, Adiantum, AES-256-HCTR2)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand set_policy" -l padding -d 'Bytes of zero padding for filenames' -r -f -a "4\t''
8\t''
16\t''
32\t''"
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand set_policy" -l data-unit-size -d 'Data unit size in bytes, a power of two (default: the filesystem block size; v2 only)' -r
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand set_policy" -l direct-key -d 'DIRECT_KEY flag (optimizes for Adiantum)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand set_policy" -l iv-ino-lblk-64 -d 'IV_INO_LBLK_64 flag (for UFS inline crypto hardware)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand set_policy" -l iv-ino-lblk-32 -d 'IV_INO_LBLK_32 flag (for eMMC inline crypto hardware; not recommended)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand set_policy" -l v1 -d 'Make a v1 policy (implied by a 16-hex-digit ID)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand set_policy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand get-policy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand get_policy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand get-nonce" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand get_nonce" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "crypt" -d 'Encrypt or decrypt raw fscrypt data (fstests\' fscrypt-crypt-util interface)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "init" -d 'Create an fscryptfs volume in an empty or new backing directory'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "mount" -d 'Mount an fscryptfs volume (FUSE)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "setup" -d 'Write the configuration, or set up a filesystem\'s .fscrypt metadata directory'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "encrypt" -d 'Encrypt an empty directory with a new policy, protected by a passphrase or key'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "unlock" -d 'Unlock an encrypted directory with one of its protectors'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "lock" -d 'Lock an encrypted directory (remove its key)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "status" -d 'Show encrypted filesystems, a filesystem\'s metadata, or a directory\'s status'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "metadata" -d 'Manage protectors and policies'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "pam" -d 'Unlock login-protected directories at login, lock them at logout (run by pam_exec)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "generate-docs" -d 'Write the man pages and completions into a directory (for packaging)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "inspect" -d 'Print a volume\'s stored bytes offline, without keys (ciphertext names, symlink targets, data units, contexts)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "fsck" -d 'Check a volume\'s backing store offline (no keys needed)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "add-key" -d 'Add a raw key (read from stdin) to a filesystem; print its identifier'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "remove-key" -d 'Remove a key (or this user\'s claim to it) from a filesystem'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "key-status" -d 'Print the status of a key on a filesystem'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "set-policy" -d 'Set an encryption policy on an empty directory'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "get-policy" -d 'Print the encryption policy of a file or directory'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "get-nonce" -d 'Print the 16-byte nonce of an encrypted file or directory in hex'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and not __fish_seen_subcommand_from crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and __fish_seen_subcommand_from metadata" -f -a "create" -d 'Create a protector or a policy'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and __fish_seen_subcommand_from metadata" -f -a "destroy" -d 'Delete a protector, a policy, or all metadata of a filesystem'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and __fish_seen_subcommand_from metadata" -f -a "change-passphrase" -d 'Change the passphrase of a passphrase protector'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and __fish_seen_subcommand_from metadata" -f -a "add-protector-to-policy" -d 'Let a protector unlock a policy (adds a wrapped copy of the policy key)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and __fish_seen_subcommand_from metadata" -f -a "remove-protector-from-policy" -d 'Stop a protector from unlocking a policy'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and __fish_seen_subcommand_from metadata" -f -a "dump" -d 'Print a protector or policy record'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and __fish_seen_subcommand_from inspect" -f -a "volume" -d 'The volume config: format, UUID, layout, removal mode, next inode number'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and __fish_seen_subcommand_from inspect" -f -a "inode" -d 'An inode: kind, stable number, size, context fields and the `crypt` options for its key'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and __fish_seen_subcommand_from inspect" -f -a "ls" -d 'A directory\'s entries: `INO KIND NAME` per line (NAME as in PATHs, bytes escaped)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and __fish_seen_subcommand_from inspect" -f -a "name" -d 'The ciphertext of entry ENTRY\'s name in directory DIR (the user\'s name in unencrypted ones)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and __fish_seen_subcommand_from inspect" -f -a "data" -d 'A regular file\'s stored data units in logical order. Hex: one line `INDEX HEX` per unit; --raw: the units back to back. Holes are printed as all-zero units unless --skip-holes'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and __fish_seen_subcommand_from inspect" -f -a "extents" -d 'A per-extent file\'s live mappings in logical order, one line each: `INDEX LOGICAL LENGTH CIPHER KEY-IDENTIFIER NONCE FIRST-UNIT BACKING-OFFSET` (the extent context\'s mode as a `crypt` CIPHER, its master key identifier and nonce in hex; FIRST-UNIT is the IV index of the mapping\'s first unit: `crypt --data-unit-index`)'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and __fish_seen_subcommand_from inspect" -f -a "extent-data" -d 'The ciphertext of one mapping of a per-extent file (`extents` INDEX): its whole data units from BACKING-OFFSET. Decrypt with `fscryptfs crypt --decrypt --kdf=HKDF-SHA512 --extent-nonce=NONCE --data-unit-index=FIRST-UNIT [--data-unit-size=DU] CIPHER KEY`'
complete -c fscryptfs -n "__fish_fscryptfs_using_subcommand help; and __fish_seen_subcommand_from inspect" -f -a "symlink" -d 'A symlink\'s stored target: the ciphertext of its fscrypt_symlink_data (the plaintext target when unencrypted)'
