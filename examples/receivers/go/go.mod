module stile.example/receiver

go 1.19
