#!/usr/bin/env bash
# End to end on the synthetic sample data set: install, train, evaluate, retrieve.
# The sample is generated on first use in $UVS_DATA (an existing folder) or ./data.
export UVS_EXTRAS="report${UVS_EXTRAS:+,$UVS_EXTRAS}"  # for the HTML reports at the end
source "$(dirname "$0")/env.sh"
data=${UVS_DATA:-data}
uvs train --data sample --dim 256 --dim-word 128 --max-epochs 3 --valid-freq 50 \
    --saveto models/sample.npz --overwrite
uvs evalrank models/sample.npz --split test
echo "captions retrieved for test image 0 ($(head -1 "$data/sample/sample_test_photos.paths.txt")):"
uvs search models/sample.npz --image-features "$data/sample/sample_test_photos.npy" --row 0 \
    --captions "$data/sample/sample_test_caps.txt" -k 5
echo "images retrieved for a caption:"
uvs search models/sample.npz --text "a brown dog runs on the beach ." \
    --images "$data/sample/sample_test_photos.npy" -k 5
uvs report models/sample.npz -o models/sample.training.html
uvs evalrank models/sample.npz --split test --report models/sample.test.html -q > /dev/null
echo "reports (open in a browser): $PWD/models/sample.training.html $PWD/models/sample.test.html"
